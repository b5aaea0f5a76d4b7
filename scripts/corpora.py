"""Extract the multi-corpus model's audio from the corpora's public GitHub repositories (and,
with --debian, from Debian packages) and write its manifests: one builder per corpus says where the
labels come from and which recordings belong together (a speaker, a source recording), so that no
group is in two splits.

    python scripts/corpora.py --repos /work/.mirror --esc50 ../shared/data/esc50 --output ~/data/corpora
    python scripts/corpora.py --repos /work/.mirror --esc50 ../shared/data/esc50 --output ~/data/corpora --debian ~/data/debs

--debian DIR: the packages of DEBIAN_CORPORA are fetched into DIR with `apt-get download` (when not
there yet) and unpacked with `dpkg-deb -x` (nothing is installed); each one's licences are read
from its copyright file and printed; games' zip archives (.pk3, .wz) give their audio too, and a
file shipped twice counts once. Then espeak-speech: espeak-ng (unpacked the same way) speaks up
to 150 of supertuxkart's translated sentences in each language it has a voice for.

--repos holds a clone (bare or not) of each repository as OWNER+NAME/repo, OWNER+NAME or NAME.
Writes OUTPUT/train.csv (path,labels,split,corpus: the training corpora, split train/val/test by
group, ESC-50 by fold: 1-3 train, 4 val, 5 test; absolute paths, so train with
--allow-outside-root) and OUTPUT/unseen/NAME.csv (path,labels,split; paths relative to
OUTPUT/unseen) for each evaluation-only corpus, never trained on. No audio enters this
repository: the files are extracted under OUTPUT.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import runpy
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

AUDIO = (".wav", ".mp3", ".flac", ".ogg")
DEBIAN_AUDIO = (*AUDIO, ".opus")  # warzone2100's music
DIGITS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


@dataclass
class Corpus:
    name: str
    repo: str  # OWNER/NAME on GitHub
    licence: str
    training: bool  # False: evaluation only
    folder: str  # the repository folder that holds the audio ("": all of it)
    label_and_group: Callable[
        [PurePosixPath, dict], tuple[str, str] | None
    ]  # repository path -> (label, group), None: left out
    metadata: str | None = None  # a table in the repository the builder reads (tab-separated)


def philharmonia(path, _):  # audio/<instrument>/<instrument>_<note>_<length>_<dynamic>_<style>.mp3
    return path.parts[1], path.parts[1] + "/" + path.stem.split("_")[1]  # one note's takes stay together


def arabic_commands(path, _):  # dataset/<word>/<speaker>_NO_<take>.wav
    word = path.parts[1]
    return None if word in DIGITS else (word, path.name.split("_")[0])


def nemo(path, table):  # samples/<speaker>_<emotion>_<n>.wav, data.tsv: emotion, speaker_id
    row = table.get(path.name)
    return None if row is None else (row["emotion"].strip(), row["speaker_id"].strip())


def wake_words(path, _):  # audio/<keyword>/<id>.wav; no speaker is recorded
    return (path.parts[1], path.stem) if len(path.parts) == 3 else None  # not audio/multiple_keywords.wav, a long mix


def precise(path, _):  # <wake word>/[wake-word/]<lang>/<id>.wav, or .../not-wake-words/...
    return ("not-wake-word" if "not-wake-words" in path.parts else path.parts[0]), path.stem


def infant_cries(path, _):  # <reason>/<device id>-<time>-<app>-<sex>-<age>-<reason>.wav
    return path.parts[1], path.name[:36]  # the first 36 characters: the recording device (a family)


def emotions_amharic(path, _):  # 01Neutral/<speaker fields>.wav
    return path.parts[0][2:].lower(), path.stem


def animals(path, _):  # Kedi-Part1/..., Kedi-Part2/... are one class
    return path.parts[0].split("-Part")[0], path.stem


def vocalizations(path, _):  # dataset/<sound>/<id>.wav
    return path.parts[1], path.stem


def drum_machines(path, _):  # machines/<Machine>/<machine>-<type>/<sample>.wav
    return path.parts[2].rsplit("-", 1)[1], path.parts[1]


CORPORA = [
    Corpus("philharmonia", "skratchdot/philharmonia-samples", "CC BY-SA 3.0", True, "audio", philharmonia),
    Corpus(
        "arabic-commands",
        "abdulkaderghandoura/arabic-speech-commands-dataset",
        "CC BY 4.0",
        True,
        "dataset",
        arabic_commands,
    ),
    Corpus("nemo", "amu-cai/nEMO", "CC BY-NC-SA 4.0", True, "samples", nemo, metadata="data.tsv"),
    Corpus("wake-words", "Picovoice/wake-word-benchmark", "Apache-2.0", True, "audio", wake_words),
    Corpus("precise", "MycroftAI/Precise-Community-Data", "CC0 / public domain", True, "", precise),
    Corpus(
        "infant-cries",
        "gveres/donateacry-corpus",
        "ODbL",
        True,
        "donateacry_corpus_cleaned_and_updated_data",
        infant_cries,
    ),
    Corpus("amharic-emotions", "Ethio2021/ASED_V1", "none stated", False, "", emotions_amharic),
    Corpus("animals", "YashNita/Animal-Sound-Dataset", "none stated", False, "", animals),
    Corpus(
        "vocalizations", "deeplyinc/Nonverbal-Vocalization-Dataset", "no derivatives", False, "dataset", vocalizations
    ),
    Corpus("drum-machines", "ritchse/tidal-drum-machines", "none stated", False, "machines", drum_machines),
]


@dataclass
class DebianCorpus:
    name: str
    packages: list[str]
    label_and_group: Callable[[str, PurePosixPath], tuple[str, str] | None]  # (package, path in it) -> (label, group)


def asterisk_prompt(package, path):  # usr/share/asterisk/sounds/<lang>_<country>_<sex>_<voice>/[<dir>/]<prompt>.wav
    if len(path.parts) < 6 or path.parts[:4] != ("usr", "share", "asterisk", "sounds"):
        return None
    # One voice per language, so the label is the language; a prompt's five languages share a split.
    return path.parts[4].split("_")[0], "/".join(path.parts[5:])[: -len(path.suffix)]


def by_package(package, path):  # games' music and sounds: the label is the package, each file its own group
    return package, f"{package}/{path}"


DEBIAN_CORPORA = [
    DebianCorpus(
        "asterisk-prompts",
        [f"asterisk-core-sounds-{lang}-wav" for lang in ("en", "es", "fr", "it", "ru")],
        asterisk_prompt,
    ),
    DebianCorpus(  # about 13 hours of games' music, orchestral to electronic
        "game-music",
        [
            "wesnoth-1.16-music",
            "warzone2100-music",
            "planetblupi-music-ogg",
            "singularity-music",
            "hyperrogue-music",
            "drascula-music",
            "nexuiz-music",
            "ufoai-music",
        ],
        by_package,
    ),
    DebianCorpus(  # about 11 hours of games' and a desktop's sound effects, music and cartoon voices
        "game-sounds",
        [
            "hedgewars-data",
            "colobot-common-sounds",
            "freedroidrpg-data",
            "oxygen-sounds",
            "supertuxkart-data",
            "megaglest-data",
            "supertux-data",
            "lincity-ng-data",
            "openclonk-data",
            "frozen-bubble-data",
            "extremetuxracer-data",
            "wesnoth-1.16-data",
            "warzone2100-data",
            "tuxpaint-data",
            "pingus-data",
        ],
        by_package,
    ),
]


def debian_licences(unpacked: Path) -> list[str]:
    """The License: fields of the package's copyright file (its machine-readable format), but for
    the stanza of its Debian packaging files (Files: debian/*), which holds no audio."""
    licences = set()
    for copyright_file in unpacked.glob("usr/share/doc/*/copyright"):
        for stanza in copyright_file.read_text(errors="replace").split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith(" ")
            )
            if fields.get("License", "").strip() and not fields.get("Files", "").strip().startswith("debian/"):
                licences.add(fields["License"].strip())
    return sorted(licences)


def unpack(package: str, debs: Path, target: Path) -> Path:
    """The package's files under target (fetched into debs with `apt-get download` when not there yet)."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(target)], check=True)
    return target


def build_debian(corpus: DebianCorpus, debs: Path, output: Path) -> tuple[list[tuple[Path, str, str]], list[str]]:
    """Unpack each package under output/NAME/PACKAGE; returns its (path, label, group) rows and licences."""
    rows, licences, seen = [], set(), set()
    for package in corpus.packages:
        target = unpack(package, debs, output / corpus.name / package)
        licences |= set(debian_licences(target))
        unpack_archives(target)
        for path in sorted(target.rglob("*")):
            if path.suffix.lower() in DEBIAN_AUDIO and path.stat().st_size:
                chosen = corpus.label_and_group(package, PurePosixPath(path.relative_to(target).as_posix()))
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                if chosen and digest not in seen:  # a game may ship one file under several names
                    seen.add(digest)
                    rows.append((path, *chosen))
    return rows, sorted(licences)


def unpack_archives(target: Path) -> None:
    """Games keep their music in zip archives (.pk3, .wz): their audio members go into NAME.pk3.d/."""
    for archive in sorted(p for p in target.rglob("*") if p.suffix in (".pk3", ".wz")):
        unpacked = archive.with_name(archive.name + ".d")
        if not unpacked.is_dir():
            with zipfile.ZipFile(archive) as members:
                audio = [name for name in members.namelist() if name.lower().endswith(DEBIAN_AUDIO)]
                members.extractall(unpacked, audio)


# Speech synthesised by espeak-ng (GPL-3.0) from a game's translated sentences (supertuxkart-data's
# .po files, GPL-3+): every language both have but the eight of scripts/espeak_speech.py's held-out
# tagging set, whose synthetic voices no model should have heard.
# espeak-ng's packages and what it loads, as the held-out set's script lists them.
ESPEAK_PACKAGES = runpy.run_path(str(Path(__file__).with_name("espeak_speech.py")))["PACKAGES"]
ESPEAK_TEXTS = ("supertuxkart-data", "usr/share/games/supertuxkart/data/po")
HELD_OUT_LANGUAGES = {"en", "de", "fr", "es", "it", "pt", "ru", "pl"}
SENTENCES_PER_LANGUAGE = 150


def po_sentences(po_file: Path) -> dict[str, str]:
    """A .po file's translated sentences, msgid -> msgstr: 5 to 20 words, no markup or placeholders."""
    entries, current, field = {}, {}, None
    for line in po_file.read_text(errors="replace").splitlines() + [""]:
        if line.startswith(("msgid ", "msgstr ")):
            field, _, text = line.partition(" ")
            current[field] = text.strip()[1:-1]
        elif line.startswith('"') and field:
            current[field] += line.strip()[1:-1]
        elif not line.strip():
            source, translated = current.get("msgid", ""), current.get("msgstr", "")
            plain = not any(mark in source + translated for mark in ("%", "{", "<", "\\", "[", "|", "_"))
            if plain and 5 <= len(source.split()) <= 20 and translated and translated != source:
                entries[source] = translated
            current, field = {}, None
    return entries


def espeak_speech(debs: Path, output: Path) -> list[tuple[Path, str, str]]:
    """output/espeak-speech/LANG/N.wav for up to SENTENCES_PER_LANGUAGE sentences per language
    (the same sentences first in every language); label the language, group the sentence."""
    root = output / "espeak-speech"
    for package in ESPEAK_PACKAGES:
        unpack(package, debs, root / "program" / package)
    linked = [root / "program" / p / "usr" / "lib" / "x86_64-linux-gnu" for p in ESPEAK_PACKAGES[1:]]
    program = root / "program" / "espeak-ng" / "usr" / "bin" / "espeak-ng"
    libraries = linked + [folder / "pulseaudio" for folder in linked if (folder / "pulseaudio").is_dir()]
    env = {
        "LD_LIBRARY_PATH": ":".join(map(str, libraries)),
        "ESPEAK_DATA_PATH": str(root / "program" / "espeak-ng-data" / "usr" / "lib" / "x86_64-linux-gnu"),
    }
    texts = unpack(ESPEAK_TEXTS[0], debs, output / "game-sounds" / ESPEAK_TEXTS[0]) / ESPEAK_TEXTS[1]
    rows = []
    for po_file in sorted(texts.glob("*.po")):
        language = po_file.stem.lower().replace("_", "-")
        if language.split("-")[0] in HELD_OUT_LANGUAGES:
            continue
        sentences = po_sentences(po_file)
        chosen = sorted(sentences, key=lambda s: hashlib.sha1(s.encode()).hexdigest())[:SENTENCES_PER_LANGUAGE]
        for source in chosen:
            path = root / language / f"{hashlib.sha1(source.encode()).hexdigest()[:12]}.wav"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                spoken = subprocess.run(
                    [str(program), "-v", language, "-w", str(path), sentences[source]], env=env, capture_output=True
                )
                if spoken.returncode:  # a language espeak-ng has no voice for
                    path.unlink(missing_ok=True)
                    break
            rows.append((path, language, source))
    return rows


SYNTHESISED = {"espeak-speech": espeak_speech}  # with --debian: corpus name -> its builder


def split_of(group: str) -> str:
    """train 80 %, val 10 %, test 10 % of groups, by a hash: the same group always lands the same."""
    bucket = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % 10
    return "val" if bucket == 0 else "test" if bucket == 1 else "train"


def find_clone(repos: Path, repo: str) -> Path:
    owner, name = repo.split("/")
    for candidate in [repos / f"{owner}+{name}" / "repo", repos / f"{owner}+{name}", repos / name]:
        if candidate.is_dir():
            return candidate
    raise SystemExit(f"no clone of {repo} under {repos} (looked for {owner}+{name}/repo, {owner}+{name}, {name})")


def git(clone: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True).stdout


def audio_files(clone: Path, folder: str) -> dict[PurePosixPath, str]:
    """The repository's non-empty audio files under `folder`: path from the repository's root -> blob id."""
    listing = git(clone, "ls-tree", "-r", "-l", "-z", "HEAD", *([folder] if folder else []))
    files = {}
    for entry in listing.split(b"\0"):
        if entry:
            meta, path = entry.decode().split("\t", 1)
            _, kind, blob, size = meta.split()
            if kind == "blob" and path.lower().endswith(AUDIO) and size != "0":
                files[PurePosixPath(path)] = blob
    return dict(sorted(files.items()))


def extract(clone: Path, blobs: dict[Path, str]) -> set[Path]:
    """Write each blob to its path (through `git cat-file --batch`: a clone that lacks a few blobs
    still gives the rest); returns the paths whose blob is missing."""
    missing = set()
    with subprocess.Popen(
        ["git", "-C", str(clone), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as batch:
        for target, blob in blobs.items():
            batch.stdin.write(f"{blob}\n".encode())
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if header[-1] == b"missing":
                missing.add(target)
                continue
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after the contents
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        batch.stdin.close()
    return missing


def read_table(clone: Path, name: str | None) -> dict:
    if not name:
        return {}
    rows = csv.DictReader(io.StringIO(git(clone, "show", f"HEAD:{name}").decode()), delimiter="\t")
    return {row["file_id"]: row for row in rows}


def build(corpus: Corpus, repos: Path, output: Path) -> list[tuple[Path, str, str]]:
    """Extract the corpus under output/NAME; returns its (path, label, group) rows."""
    clone = find_clone(repos, corpus.repo)
    table = read_table(clone, corpus.metadata)
    target = output / corpus.name
    rows, blobs = [], {}
    for path, blob in audio_files(clone, corpus.folder).items():
        chosen = corpus.label_and_group(path, table)
        if chosen:
            rows.append((target / path, *chosen))
            if not (target / path).is_file():
                blobs[target / path] = blob
    missing = extract(clone, blobs)
    if missing:
        print(f"{corpus.name}: {len(missing)} files missing from the clone, left out", file=sys.stderr)
    return [(path, label, group) for path, label, group in rows if path not in missing]


def esc50(root: Path) -> list[tuple[str, str, str]]:
    with open(root / "meta" / "esc50.csv", newline="") as f:
        return [(str((root / "audio" / r["filename"]).resolve()), r["category"], r["fold"]) for r in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=Path, required=True, help="folder holding the repositories' clones")
    parser.add_argument("--esc50", type=Path, required=True, help="ESC-50 folder (meta/esc50.csv, audio/)")
    parser.add_argument("--output", type=Path, required=True, help="where the audio and the manifests go")
    parser.add_argument("--debian", type=Path, help="also the Debian packages' corpora; their .deb files are kept here")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "unseen").mkdir(exist_ok=True)
    training = [
        (path, label, {"1": "train", "2": "train", "3": "train", "4": "val", "5": "test"}[fold], "esc50")
        for path, label, fold in esc50(args.esc50)
    ]
    for corpus in CORPORA:
        base = args.output if corpus.training else args.output / "unseen"
        rows = build(corpus, args.repos, base)
        labels = sorted({label for _, label, _ in rows})
        print(
            f"{corpus.name}: {len(rows)} clips, {len(labels)} classes, {len({g for _, _, g in rows})} groups "
            f"({corpus.licence}; {'training' if corpus.training else 'evaluation only'})",
            file=sys.stderr,
        )
        if corpus.training:
            training += [(str(path.resolve()), label, split_of(group), corpus.name) for path, label, group in rows]
        else:
            with open(args.output / "unseen" / f"{corpus.name}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "labels", "split"])
                writer.writerows((path.relative_to(base).as_posix(), label, "test") for path, label, _ in rows)
    for corpus in DEBIAN_CORPORA if args.debian else []:
        rows, licences = build_debian(corpus, args.debian, args.output)
        print(
            f"{corpus.name}: {len(rows)} clips, {len({label for _, label, _ in rows})} classes, "
            f"{len({g for _, _, g in rows})} groups ({', '.join(licences) or 'no licence found'}; training)",
            file=sys.stderr,
        )
        training += [(str(path.resolve()), label, split_of(group), corpus.name) for path, label, group in rows]
    for name, synthesise in SYNTHESISED.items() if args.debian else []:
        rows = synthesise(args.debian, args.output)
        print(
            f"{name}: {len(rows)} clips, {len({label for _, label, _ in rows})} classes "
            "(espeak-ng GPL-3.0, supertuxkart's texts GPL-3+; training)",
            file=sys.stderr,
        )
        training += [(str(path.resolve()), label, split_of(group), name) for path, label, group in rows]
    with open(args.output / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels", "split", "corpus"])
        writer.writerows(training)
    print(f"{args.output / 'train.csv'}: {len(training)} clips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
