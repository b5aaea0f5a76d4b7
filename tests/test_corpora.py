"""scripts/corpora.py on small git repositories laid out like the real corpora."""

import csv
import runpy
import subprocess

import numpy as np

from conftest import REPO, sine, write_wav

corpora = runpy.run_path(str(REPO / "scripts" / "corpora.py"), run_name="corpora")


def git_repo(folder, files: dict[str, bytes | None]):
    """A git repository holding `files` (path -> bytes; None: a short WAV)."""
    folder.mkdir(parents=True)
    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            write_wav(target, sine(440, 0.2))
        else:
            target.write_bytes(data)
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(folder), *command], check=True)


def test_manifests_keep_speakers_in_one_split_and_leave_out_digits(tmp_path):
    repos, esc50, output = tmp_path / "repos", tmp_path / "esc50", tmp_path / "out"
    speakers = [f"{n:08d}" for n in range(40)]
    git_repo(
        repos / "abdulkaderghandoura+arabic-speech-commands-dataset" / "repo",
        {
            **{
                f"dataset/{word}/{s}_NO_0{take}.wav": None
                for word in ("yes", "stop", "one")
                for s in speakers
                for take in (1, 2)
            },
            "dataset/yes/empty.wav": b"",
            "background_noise/fan.wav": None,
        },
    )
    git_repo(
        repos / "YashNita+Animal-Sound-Dataset",  # a clone named OWNER+NAME also works
        {"Kedi-Part1/cat_1.wav": None, "Kedi-Part2/cat_2.wav": None, "Aslan/aslan_1.wav": None},
    )
    (esc50 / "meta").mkdir(parents=True)
    (esc50 / "meta" / "esc50.csv").write_text("filename,fold,category\n1-1-A-0.wav,1,dog\n5-1-A-0.wav,5,dog\n")
    chosen = [c for c in corpora["CORPORA"] if c.name in ("arabic-commands", "animals")]
    corpora["CORPORA"][:] = chosen
    assert corpora["main"](["--repos", str(repos), "--esc50", str(esc50), "--output", str(output)]) == 0

    rows = list(csv.DictReader(open(output / "train.csv")))
    arabic = [r for r in rows if r["corpus"] == "arabic-commands"]
    assert len(arabic) == 2 * 40 * 2  # "one" is a digit word; the empty file and background noise are left out
    assert {r["labels"] for r in arabic} == {"yes", "stop"}
    split_of_speaker = {}
    for r in arabic:
        speaker = r["path"].rsplit("/", 1)[1].split("_")[0]
        assert split_of_speaker.setdefault(speaker, r["split"]) == r["split"]  # a speaker in one split only
    assert set(split_of_speaker.values()) == {"train", "val", "test"}
    assert [(r["labels"], r["split"], r["corpus"]) for r in rows if r["corpus"] == "esc50"] == [
        ("dog", "train", "esc50"),
        ("dog", "test", "esc50"),
    ]
    assert all(open(r["path"], "rb").read(4) == b"RIFF" for r in arabic[:5])  # extracted, absolute paths

    unseen = list(csv.DictReader(open(output / "unseen" / "animals.csv")))
    assert sorted((r["path"], r["labels"]) for r in unseen) == [
        ("animals/Aslan/aslan_1.wav", "Aslan"),
        ("animals/Kedi-Part1/cat_1.wav", "Kedi"),
        ("animals/Kedi-Part2/cat_2.wav", "Kedi"),
    ]
    assert (output / "unseen" / unseen[0]["path"]).is_file()
    assert not any("animals" in r["path"] for r in rows)  # evaluation-only: never in the training manifest
    np.testing.assert_equal(len(list((output / "arabic-commands").rglob("*.wav"))), 2 * 40 * 2)


def test_a_debian_package_corpus_is_unpacked_with_its_licence(tmp_path):
    """A .deb laid out like asterisk-core-sounds-*-wav: the language is the label, a prompt's
    languages share a split, the licence comes from its copyright file (not its packaging's)."""
    debs, esc50, output = tmp_path / "debs", tmp_path / "esc50", tmp_path / "out"
    debs.mkdir()
    for n, (lang, voice) in enumerate((("en", "en_US_f_Allison"), ("fr", "fr_CA_f_June"))):
        package = f"asterisk-core-sounds-{lang}-wav"
        root = tmp_path / "pkg" / package
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
        )
        for k, prompt in enumerate(("hello", "goodbye", "digits/1")):  # each recording its own (no two alike)
            (root / "usr/share/asterisk/sounds" / voice / prompt).parent.mkdir(parents=True, exist_ok=True)
            tone = sine(440 + 100 * k + 1000 * n, 0.2)
            write_wav(root / "usr/share/asterisk/sounds" / voice / f"{prompt}.wav", tone, rate=8000)
        (root / "usr/share/doc" / package).mkdir(parents=True)
        (root / "usr/share/doc" / package / "copyright").write_text(
            "Format: x\n\nFiles: *\nCopyright: someone\nLicense: CC-BY-SA-3.0\n\nFiles: debian/*\nLicense: GPL-2+\n"
        )
        subprocess.run(
            ["dpkg-deb", "-b", "-Zgzip", str(root), str(debs / f"{package}_1.0-1_all.deb")],
            check=True,
            capture_output=True,
        )
    (esc50 / "meta").mkdir(parents=True)
    (esc50 / "meta" / "esc50.csv").write_text("filename,fold,category\n1-1-A-0.wav,1,dog\n")
    corpora["CORPORA"][:] = []
    del corpora["DEBIAN_CORPORA"][1:]  # the other corpora would download their packages
    corpora["SYNTHESISED"].clear()
    corpora["DEBIAN_CORPORA"][0].packages[:] = ["asterisk-core-sounds-en-wav", "asterisk-core-sounds-fr-wav"]
    code = corpora["main"](
        ["--repos", str(tmp_path), "--esc50", str(esc50), "--output", str(output), "--debian", str(debs)]
    )
    assert code == 0
    rows = [r for r in csv.DictReader(open(output / "train.csv")) if r["corpus"] == "asterisk-prompts"]
    assert sorted(r["labels"] for r in rows) == ["en"] * 3 + ["fr"] * 3
    split = {}
    for r in rows:
        prompt = r["path"].split("_f_")[1].split("/", 1)[1]
        assert split.setdefault(prompt, r["split"]) == r["split"]  # "hello" in every language: one split
    assert corpora["debian_licences"](output / "asterisk-prompts" / "asterisk-core-sounds-en-wav") == ["CC-BY-SA-3.0"]


def test_general_labels_add_every_clip_once_more_under_a_shared_label(tmp_path):
    general = runpy.run_path(str(REPO / "scripts" / "general_labels.py"), run_name="general_labels")
    (tmp_path / "esc50" / "meta").mkdir(parents=True)
    (tmp_path / "esc50" / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category\n1-a.wav,1,0,dog\n1-b.wav,1,10,rain\n1-c.wav,1,45,train\n"
    )
    rows = [
        ("/a/dog.wav", "dog", "train", "esc50"),
        ("/a/rain.wav", "rain", "test", "esc50"),
        ("/a/train.wav", "train", "train", "esc50"),
        ("/b/oboe.mp3", "oboe", "train", "philharmonia"),
        ("/c/yes.wav", "ok", "val", "arabic-commands"),
        ("/d/x.wav", "not-wake-word", "train", "precise"),
    ]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "labels", "split", "corpus"), *rows])
    assert general["main"]([str(tmp_path / "train.csv"), str(tmp_path / "esc50"), str(tmp_path / "out.csv")]) == 0
    with open(tmp_path / "out.csv", newline="") as f:
        written = [tuple(r.values()) for r in csv.DictReader(f)]
    assert written[: len(rows)] == rows  # the corpora's own rows first, unchanged
    assert written[len(rows) :] == [
        ("/a/dog.wav", "animal", "train", "general"),
        ("/a/rain.wav", "nature", "test", "general"),
        ("/a/train.wav", "urban", "train", "general"),
        ("/b/oboe.mp3", "music", "train", "general"),
        ("/c/yes.wav", "speech", "val", "general"),
    ]  # the mixed not-wake-word left out


def test_games_music_in_archives_is_unpacked_and_each_sound_counted_once(tmp_path):
    """A .deb laid out like nexuiz-music (the tracks in a .pk3 zip) and like drascula-music (one
    track under several folders): the archive's audio is unpacked, a repeated file kept once, the
    package is the label."""
    import io
    import zipfile

    import soundfile as sf

    debs, esc50, output = tmp_path / "debs", tmp_path / "esc50", tmp_path / "out"
    debs.mkdir()
    root = tmp_path / "pkg" / "some-music"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: some-music\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
    )
    track = io.BytesIO()
    sf.write(track, sine(220, 0.5, rate=44100), 44100, format="OGG")
    music = root / "usr/share/games/x"
    music.mkdir(parents=True)
    with zipfile.ZipFile(music / "music.pk3", "w") as archive:
        archive.writestr("sound/cdtracks/one.ogg", track.getvalue())
        archive.writestr("maps/level.bsp", b"not audio")
    for language in ("en", "de"):  # the same bytes twice
        (music / language).mkdir()
        write_wav(music / language / "theme.wav", sine(330, 0.5))
    subprocess.run(
        ["dpkg-deb", "-b", "-Zgzip", str(root), str(debs / "some-music_1.0-1_all.deb")], check=True, capture_output=True
    )
    (esc50 / "meta").mkdir(parents=True)
    (esc50 / "meta" / "esc50.csv").write_text("filename,fold,category\n1-1-A-0.wav,1,dog\n")
    corpora["CORPORA"][:] = []
    assert "game-music" in [c.name for c in runpy.run_path(str(REPO / "scripts" / "corpora.py"))["DEBIAN_CORPORA"]]
    corpora["DEBIAN_CORPORA"][:] = [corpora["DebianCorpus"]("game-music", ["some-music"], corpora["by_package"])]
    corpora["SYNTHESISED"].clear()
    argv = ["--repos", str(tmp_path), "--esc50", str(esc50), "--output", str(output), "--debian", str(debs)]
    assert corpora["main"](argv) == 0
    rows = [r for r in csv.DictReader(open(output / "train.csv")) if r["corpus"] == "game-music"]
    names = sorted(r["path"].rsplit("/", 2)[-2] + "/" + r["path"].rsplit("/", 1)[-1] for r in rows)
    assert names == ["cdtracks/one.ogg", "de/theme.wav"]  # the archive's track; the theme once
    assert {r["labels"] for r in rows} == {"some-music"}
    assert corpora["main"](argv) == 0  # again: nothing unpacked twice, the same rows
    assert len([r for r in csv.DictReader(open(output / "train.csv")) if r["corpus"] == "game-music"]) == 2


def test_sentences_for_speech_are_plain_translated_sentences(tmp_path):
    po = tmp_path / "sv.po"
    po.write_text(
        '#: a\nmsgid ""\nmsgstr "Language: sv\\n"\n\n'
        'msgid "Play every official track at least once."\nmsgstr "Spela varje officiell bana åtminstone en gång."\n\n'
        'msgid "Hit %d karts with a bowling ball today."\nmsgstr "Träffa %d bilar med en bowlingboll idag."\n\n'
        'msgid "Too short."\nmsgstr "För kort."\n\n'
        'msgid "A sentence split over "\n"two lines of the file here."\nmsgstr ""\n"En mening över "\n"två rader i filen här."\n\n'
        'msgid "Not translated yet but long enough to count."\nmsgstr ""\n'
    )
    assert corpora["po_sentences"](po) == {
        "Play every official track at least once.": "Spela varje officiell bana åtminstone en gång.",
        "A sentence split over two lines of the file here.": "En mening över två rader i filen här.",
    }
    held_out = runpy.run_path(str(REPO / "scripts" / "espeak_speech.py"), run_name="espeak")["SENTENCES"]
    assert set(held_out) <= corpora["HELD_OUT_LANGUAGES"]  # the tagging set's languages are never synthesised
