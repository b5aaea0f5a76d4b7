"""The reproductions of the attack on the command line (issue: "Keep every promise of RELIABILITY.md
under attack"): each one exits with a one-line message and the right code, and loses nothing."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import sine, write_wav
from diverse_embed.cli import main
from diverse_embed.search.index import AudioIndex

UNTRAINED = ["--model", "untrained-seed0", "-q", "--num-workers", "0"]
NOT_UTF8 = b"\xff\xfebad.wav"


def named(folder: Path, name: bytes | str, audio=None) -> Path:
    """A WAV under a name of any bytes (soundfile cannot create some of them itself)."""
    write_wav(folder / "plain.tmp.wav", sine(440, 1.2) if audio is None else audio)
    target = os.path.join(os.fsencode(folder), os.fsencode(name))
    os.rename(os.fsencode(folder / "plain.tmp.wav"), target)
    return Path(os.fsdecode(target))


def test_a_name_that_is_not_utf8_is_embedded_indexed_searched_and_tagged(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "good.wav", sine(660, 1.5))
    bad = named(src, NOT_UTF8)
    assert main(["embed", str(src), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 0
    assert sorted(np.load(tmp_path / "e.npz")["paths"]) == sorted([str(src / "good.wav"), str(bad)])
    assert main(["embed", str(src), "-o", str(tmp_path / "e.parquet"), *UNTRAINED]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert os.fsencode(bad) in table["path_bytes"] and str(src) + "/\\xff\\xfebad.wav" in table["path"]
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(bad), "-k", "2", "--model", "untrained-seed0"]) == 0
    out = capsys.readouterr().out
    assert "query: " + str(src) + "/\\xff\\xfebad.wav" in out and "\udcff" not in out
    assert main(["search", str(tmp_path / "idx"), str(bad), "--json", "--model", "untrained-seed0"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits[0]["path"] == str(bad) and hits[0]["score"] > 0.999  # JSON gives the name back exactly
    assert main(["index", "export", str(tmp_path / "idx"), str(tmp_path / "x.parquet")]) == 0
    capsys.readouterr()
    assert main(["tag", str(bad), "--json", "-q", "--num-workers", "0"]) == 0  # the bundled model has labels
    assert json.loads(capsys.readouterr().out)["path"] == str(bad)


def test_control_characters_in_names_are_printed_escaped(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    hostile = named(src, "\x1b[2J\rred\u202eevil.wav")
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(hostile), "--model", "untrained-seed0"]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J\\rred\\u202eevil.wav" in out
    assert not any(char in out for char in "\x1b\r\u202e")


def test_skipped_tsv_keeps_names_with_tabs_newlines_and_foreign_bytes(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "good.wav", sine(660, 1.5))
    hostile = []
    for name in ("tab\there.wav", "new\nline.wav", "back\\nslash.wav", NOT_UTF8):
        path = Path(os.fsdecode(os.path.join(os.fsencode(src), os.fsencode(name))))
        with open(os.fsencode(path), "w") as f:
            f.write("not audio")
        hostile.append(str(path))
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    from diverse_embed.search.index import AudioIndex

    index = AudioIndex(tmp_path / "idx")
    assert sorted(index.skipped()) == sorted(hostile) and list(index.files()) == [str(src / "good.wav")]
    assert main(["index", "sync", str(tmp_path / "idx"), str(src), *UNTRAINED]) == 0
    index = AudioIndex(tmp_path / "idx")
    assert "0 removed" in capsys.readouterr().out  # no ghost entries, nothing real removed
    assert sorted(index.skipped()) == sorted(hostile) and list(index.files()) == [str(src / "good.wav")]


def test_sync_keeps_the_files_of_a_folder_it_cannot_read(tmp_path, capsys, monkeypatch):
    src = tmp_path / "src"
    for part, freq in (("a", 440), ("b", 660)):
        (src / part).mkdir(parents=True)
        for i in range(2):
            write_wav(src / part / f"{i}.wav", sine(freq + 50 * i, 1.2))
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    (src / "a" / "0.wav").unlink()  # really gone: removed
    scandir = os.scandir

    def refusing(path="."):  # what chmod 000 does to a user without root's access
        if os.fspath(path) == str(src / "b"):
            raise PermissionError(13, "Permission denied", str(src / "b"))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    capsys.readouterr()
    assert main(["index", "sync", str(tmp_path / "idx"), str(src), *UNTRAINED]) == 1
    captured = capsys.readouterr()
    assert "1 removed" in captured.out and f"error: cannot read {src / 'b'} (Permission denied)" in captured.err
    from diverse_embed.search.index import AudioIndex

    assert sorted(AudioIndex(tmp_path / "idx").files()) == [
        str(src / "a" / "1.wav"),
        str(src / "b" / "0.wav"),
        str(src / "b" / "1.wav"),
    ]


def test_huge_finite_samples_are_refused_not_embedded_as_nan(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "good.wav", sine(660, 1.5))
    write_wav(src / "huge.wav", sine(440, 2.0) * 3e29, subtype="FLOAT")
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    out = capsys.readouterr().out
    assert "huge.wav: the model's output is not finite: its samples reach 1.5e+29" in out
    from diverse_embed.search.index import AudioIndex

    index = AudioIndex(tmp_path / "idx")
    assert list(index.files()) == [str(src / "good.wav")] and list(index.skipped()) == [str(src / "huge.wav")]
    assert main(["search", str(tmp_path / "idx"), str(src / "huge.wav"), "--json", *UNTRAINED[:2]]) == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("the model's output is not finite")
    assert main(["tag", str(src / "huge.wav"), "--json", "-q", "--num-workers", "0"]) == 1
    assert "NaN" not in capsys.readouterr().out
    from diverse_embed import AudioLoadError
    from diverse_embed.resolve import untrained_model

    with pytest.raises(AudioLoadError, match="clip 0: the model's output is not finite"):
        untrained_model().embed(sine(440, 1.0) * 1e30, 16000)


def test_a_one_hertz_file_is_refused_before_it_is_resampled(tmp_path, capsys):
    write_wav(tmp_path / "slow.wav", sine(0.1, 7200, rate=1), rate=1)
    assert main(["embed", str(tmp_path / "slow.wav"), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 1
    assert "slow.wav: sample rate 1 Hz is below 1000 Hz" in capsys.readouterr().err
    assert not (tmp_path / "e.npz").exists()


def test_remove_refuses_an_empty_path(tmp_path, capsys, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "a.wav", sine(660, 1.5))
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    monkeypatch.chdir(tmp_path)  # "" was the current folder, which holds everything
    assert main(["index", "remove", str(tmp_path / "idx"), ""]) == 2
    assert "empty path" in capsys.readouterr().err
    from diverse_embed.search.index import AudioIndex

    assert list(AudioIndex(tmp_path / "idx").files()) == [str(src / "a.wav")]


def test_a_file_changed_while_it_is_embedded_is_embedded_again(tmp_path):
    from diverse_embed.resolve import untrained_model
    from diverse_embed.search.index import AudioIndex

    model = untrained_model()
    target = write_wav(tmp_path / "target.wav", sine(440, 2.0))
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0")
    iter_embed_files = model.iter_embed_files

    def changing_meanwhile(paths, *args, **kwargs):  # another clip copied over it once it has been read
        for path, output in iter_embed_files(paths, *args, **kwargs):
            write_wav(target, sine(3000, 3.0) * 0.1)
            os.utime(target, ns=(1, 10**18))
            yield path, output

    model.iter_embed_files = changing_meanwhile
    index.add([target], model, num_workers=0, progress=False)
    model.iter_embed_files = iter_embed_files
    report = index.add([target], model, num_workers=0, progress=False)
    assert report.added == [str(target)] and report.unchanged == 0  # not "already indexed"
    stored = AudioIndex(tmp_path / "idx").vectors()[0]
    np.testing.assert_allclose(stored, model.embed_files([target], num_workers=0, progress=False)[0], atol=1e-6)


@pytest.mark.slow
def test_outputs_that_cannot_be_written_fail_in_one_line_and_keep_the_old_file(tmp_path):
    import resource
    import subprocess
    import sys

    from conftest import REPO

    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        write_wav(src / f"{i}.wav", sine(300 + 40 * i, 1.5))
    command = [sys.executable, "-m", "diverse_embed.cli", "embed", str(src), *UNTRAINED, "--segments", "-o"]

    def small_disk():  # every file this process writes may hold at most 4 kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))

    for name in ("e.npz", "e.parquet"):
        good = tmp_path / name
        assert main(["embed", str(src / "0.wav"), *UNTRAINED, "-o", str(good)]) == 0
        before = good.read_bytes()
        full = subprocess.run([*command, str(good)], cwd=REPO, capture_output=True, text=True, preexec_fn=small_disk)
        assert full.returncode == 2 and full.stderr.strip().splitlines() == [f"error: {good}: File too large"]
        assert good.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "folder.npz").mkdir()
    named_folder = subprocess.run([*command, str(tmp_path / "folder.npz")], cwd=REPO, capture_output=True, text=True)
    assert (
        named_folder.returncode == 2
        and named_folder.stderr.strip() == f"error: {tmp_path / 'folder.npz'}: is a folder, not a file"
    )
    nested = tmp_path / "new" / "deeper" / "e.parquet"  # missing folders are made, for Parquet as for .npz
    assert main(["embed", str(src / "0.wav"), *UNTRAINED, "-o", str(nested)]) == 0 and nested.is_file()


def test_a_named_link_loop_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert main(["embed", str(tmp_path / "loop"), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 2
    assert "a symbolic link to nothing, or a loop of links" in capsys.readouterr().err


HOSTILE_CONFIGS = [
    ({"n_layers": 5000}, "n_layers must be between 1 and 64"),
    ({"d_model": 100_000, "n_layers": 1000}, "d_model must be between 1 and 4096"),
    ({"d_model": 4096, "n_layers": 64, "ff_dim": 65_536}, "floats of work per chunk, more than"),
    ({"num_labels": 10**9}, "num_labels must be between"),
    ({"chunk_seconds": 1e6}, "chunk_seconds must be between"),
    ({"waveform": {"patch_ms": 0}}, "waveform.patch_ms must be between"),
    ({"sample_rate": 0}, "sample_rate must be between"),
    ({"d_model": -64}, "d_model must be between"),
    ({"id2label": ["a", "b"], "num_labels": 2}, "id2label must map class indices"),
    ({"pitch": [2048]}, "pitch must be a JSON object"),
    ({"pitch": {"n_fft": 0}}, "pitch.n_fft must be between"),
    ({"dropout": float("nan")}, "dropout must be between"),
    ({"n_heads": 12.5}, "n_heads must be an integer"),
    ({"n_layers": True}, "n_layers must be an integer"),
    ({"neuralogram": {"fmin_hz": 8000.0, "fmax_hz": 200.0}}, "neuralogram.fmin_hz must be below neuralogram.fmax_hz"),
]


@pytest.mark.parametrize("changes, message", HOSTILE_CONFIGS, ids=[m.split()[0] for _, m in HOSTILE_CONFIGS])
def test_a_hostile_config_fails_in_one_line_before_anything_is_built(tmp_path, capsys, changes, message):
    import time

    from diverse_embed.config import DiverseEmbedConfig

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**DiverseEmbedConfig().to_dict(), **changes}))
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    started = time.perf_counter()
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--model", str(folder), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(folder / "config.json") in err, err
    assert time.perf_counter() - started < 5  # refused from the numbers, not after building the network


@pytest.mark.parametrize(
    "text, message", [("[]", "config must be a JSON object"), ("[" * 100_000 + "]" * 100_000, "nested too deeply")]
)
def test_a_config_that_is_not_an_object_is_refused(tmp_path, text, message):
    from diverse_embed.checkpoint import read_config
    from diverse_embed.errors import CheckpointError

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        read_config(tmp_path / "config.json")


def test_weights_holding_nan_are_refused(tmp_path):
    import torch

    from diverse_embed.errors import CheckpointError
    from diverse_embed.model import DiverseEmbedder
    from diverse_embed.resolve import untrained_model

    model = untrained_model()
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    model.save_pretrained(tmp_path / "model")
    with pytest.raises(CheckpointError, match="damaged weights, NaN or infinite values in"):
        DiverseEmbedder.from_pretrained(tmp_path / "model")


def small_index(tmp_path, files=3):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i in range(files):
        write_wav(src / f"{i}.wav", sine(300 + 100 * i, 1.2))
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    return src, tmp_path / "idx"


def break_shard(idx: Path, how: str) -> None:
    manifest = json.loads((idx / "index.json").read_text())
    shard = idx / "shards" / manifest["shards"][0]
    if how == "truncated":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif how == "empty":
        shard.write_bytes(b"")
    elif how == "foreign":
        shard.write_text("not a shard")
    elif how == "flipped":
        data = bytearray(shard.read_bytes())
        data[len(data) // 3] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif how == "column missing" or how in FOREIGN_COLUMNS:
        arrays = dict(np.load(shard))
        if how == "column missing":
            del arrays["vectors"]
        else:
            FOREIGN_COLUMNS[how](arrays)
        with open(shard, "wb") as f:  # a valid npz, whatever it holds
            np.savez(f, **arrays)
    else:  # a manifest field
        key, value = how.split("=", 1)
        if value == "<absent>":
            del manifest[key]
        else:
            manifest[key] = json.loads(value)
        (idx / "index.json").write_text(json.dumps(manifest))


# Valid npz files holding what no index writes (the second attack: 28 of 45 runs ended in a raw error).
FOREIGN_COLUMNS = {
    "vectors (2, 64)": lambda a: a.update(vectors=np.zeros((2, 64), np.float32)),
    "vectors 1-D": lambda a: a.update(vectors=a["vectors"][:, 0]),
    "columns of unequal length": lambda a: a.update(size=a["size"][:1]),
    "start as text": lambda a: a.update(start=a["start"].astype(str)),
    "removed as int": lambda a: a.update(removed=a["removed"].astype(int)),
    "path 2-D": lambda a: a.update(path=a["path"][:, None]),
}
DAMAGE = [
    "truncated",
    "empty",
    "foreign",
    "flipped",
    "column missing",
    "shards=<absent>",
    'generation="7"',
    "dim=-3",
    'shards=["../../other/shards/x.npz"]',
    'faiss={"type": 1}',
    *FOREIGN_COLUMNS,
    "dim=255",
    'index_type="bogus"',
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_index_is_one_line_and_exit_2(tmp_path, capsys, how):
    src, idx = small_index(tmp_path)
    break_shard(idx, how)
    commands = [
        ["search", str(idx), str(src / "0.wav"), "--model", "untrained-seed0"],
        ["index", "info", str(idx)],
        ["index", "add", str(idx), str(src), *UNTRAINED],
    ]
    if how != "flipped":  # zip's CRC is checked for the arrays read: duplicates and export read fewer
        commands += [["duplicates", str(idx)], ["index", "export", str(idx), str(tmp_path / "x.parquet")]]
    if how.startswith("vectors"):  # search (from the intact vectors.faiss) and info never read them
        commands = commands[2:]
    for command in commands:
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "damaged" in err, err


@pytest.mark.slow
def test_a_damaged_faiss_file_is_never_trusted_and_add_rewrites_it(tmp_path, capsys, caplog):
    from diverse_embed.search.index import AudioIndex

    src, idx = small_index(tmp_path)
    faiss_file = idx / "vectors.faiss"
    whole = faiss_file.read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(20):
        data = bytearray(whole[: len(whole) - 7] if trial == 0 else whole)
        if trial:
            for i in rng.integers(0, len(data), 3):
                data[i] ^= 1 + int(rng.integers(0, 255))
        faiss_file.write_bytes(bytes(data))
        hits = AudioIndex(idx).search_file(src / "1.wav", None, k=3)
        assert hits[0].path == str(src / "1.wav") and hits[0].score > 0.999 and len(hits) == 3
    assert "vectors.faiss is damaged" in caplog.text
    write_wav(src / "new.wav", sine(1234, 1.0))
    assert main(["index", "add", str(idx), str(src / "new.wav"), *UNTRAINED]) == 0
    caplog.clear()
    assert AudioIndex(idx).search_file(src / "new.wav", None, k=1)[0].path == str(src / "new.wav")
    assert "damaged" not in caplog.text


def test_a_first_build_killed_before_its_manifest_is_resumed_and_leftovers_go(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_wav(src / f"{i}.wav", sine(300 + 100 * i, 1.2))
    idx = tmp_path / "idx"
    (idx / "shards").mkdir(parents=True)  # what a kill at the first rename leaves
    (idx / ".lock").touch()
    (idx / ".index.json.1234abcd.tmp").write_text("{")
    (idx / "shards" / "000000-deadbeef.npz").write_bytes(b"half a shard")
    assert main(["index", "build", str(src), "-o", str(idx), *UNTRAINED]) == 0
    assert sorted(p.name for p in idx.iterdir()) == [
        ".lock",
        "index.json",
        "rows.bin",
        "shards",
        "skipped.tsv",
        "vectors.faiss",
    ]
    manifest = json.loads((idx / "index.json").read_text())
    assert sorted(p.name for p in (idx / "shards").iterdir()) == sorted(manifest["shards"])
    (idx / "shards" / "000009-0a1b2c3d.npz").write_bytes(b"a later kill's orphan")
    (idx / ".vectors.faiss.5678abcd.tmp").write_bytes(b"x")
    write_wav(src / "3.wav", sine(900, 1.0))
    assert main(["index", "add", str(idx), str(src), *UNTRAINED]) == 0
    assert not list(idx.glob(".*.tmp")) and not (idx / "shards" / "000009-0a1b2c3d.npz").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")  # a folder of someone else's is still refused
    assert main(["index", "build", str(src), "-o", str(other), *UNTRAINED]) == 2


@pytest.mark.slow
def test_readers_see_one_generation_while_a_writer_commits(tmp_path):
    import threading

    from diverse_embed.resolve import untrained_model
    from diverse_embed.search.index import AudioIndex
    from diverse_embed.search.store import AddReport

    index = AudioIndex.create(tmp_path / "idx", untrained_model(), "untrained-seed0")
    rng = np.random.default_rng(0)

    def commit(names):
        rows = [
            (name, np.array([np.nan]), np.array([np.nan]), v[None], 1.0, (-1, -1))  # one clip row a file
            for name, v in zip(names, rng.standard_normal((len(names), 256)).astype(np.float32))
        ]
        index._commit(rows, [], AddReport())
        index.build()

    commit([f"/nowhere/{i}.wav" for i in range(50)])
    done, failures, reads = threading.Event(), [], []

    def write():
        for cycle in range(12):  # each commit adds a shard, and every open reads every shard's headers
            commit([f"/nowhere/new_{cycle}.wav"])
            index._commit([], [], AddReport(), removed=[f"/nowhere/new_{cycle}.wav"] if cycle % 2 else [])
            index.build()
        done.set()

    def read():
        query = np.ones(256, np.float32)
        while not done.is_set():
            try:
                AudioIndex(tmp_path / "idx").search_vector(query, k=5)
                reads.append(1)
            except Exception as err:  # any failure is the defect
                failures.append(repr(err))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    assert len(reads) > 12  # the readers did read while the writer committed


def test_the_page_runs_only_its_own_script():
    import base64
    import hashlib
    import re

    from diverse_embed.search.page import search_page

    page = search_page([("<q>.wav", "unreadable")], "untrained-seed0")
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1)
    script = re.search(r"<script>(.*)</script>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "script-src 'unsafe-inline'" not in policy
    assert page.count("<script>") == 1


# The second attack (issue "Never delete what is not ours, bounded memory for any input, one line
# for every mistake"): each test below failed on cc19572.


def test_a_commit_deletes_only_files_the_index_wrote_never_through_a_link(tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        write_wav(src / f"{i}.wav", sine(300 + 100 * i, 1.2))
    idx = tmp_path / "idx"
    assert main(["index", "build", str(src / "0.wav"), "-o", str(idx), *UNTRAINED]) == 0
    elsewhere = tmp_path / "V"
    (idx / "shards").rename(elsewhere)
    (idx / "shards").symlink_to(elsewhere)  # the shards moved to another disk, a link left in their place
    thesis = elsewhere / "thesis.docx"
    thesis.write_text("four years of work")
    (elsewhere / "000007-0a1b2c3d.npz").write_bytes(b"looks like an orphan shard, but behind a link")
    (idx / ".notes.tmp").write_text("mine")
    (idx / "README.txt").write_text("mine too")
    assert main(["index", "add", str(idx), str(src / "1.wav"), *UNTRAINED]) == 0
    assert thesis.read_text() == "four years of work" and (elsewhere / "000007-0a1b2c3d.npz").exists()
    assert (idx / ".notes.tmp").exists() and (idx / "README.txt").exists()
    assert len(AudioIndex(idx).files()) == 2
    (idx / "shards").unlink()
    elsewhere.rename(idx / "shards")  # a real folder again: its foreign files are reported, never removed
    (idx / "shards" / "README.txt").write_text("notes")
    (idx / "shards" / ".notes.tmp").write_text("notes")
    caplog.set_level("WARNING")
    assert main(["index", "remove", str(idx), str(src / "1.wav"), "-q"]) == 0
    assert all((idx / "shards" / name).exists() for name in ("thesis.docx", "README.txt", ".notes.tmp"))
    assert not (idx / "shards" / "000007-0a1b2c3d.npz").exists()  # the index's own name pattern: an orphan
    assert "did not write, left alone" in caplog.text
