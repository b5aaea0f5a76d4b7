import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, sine, write_wav
from diverse_embed import DiverseEmbedder
from diverse_embed.cli import main
from diverse_embed.search.backends import RefinedIndex, build_faiss_index
from diverse_embed.search.index import AddReport, AudioIndex, AudioIndexError

RNG = np.random.default_rng(5)


def noise(seconds: float, amplitude: float) -> np.ndarray:
    return (amplitude * RNG.standard_normal(int(seconds * 16000))).astype(np.float32)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Four sines and four noises, two seconds each."""
    folder = tmp_path_factory.mktemp("collection")
    for freq in (300, 500, 900, 1500):
        write_wav(folder / f"sine_{freq}.wav", sine(freq, 2.0, amplitude=0.4))
    for i, amplitude in enumerate((0.05, 0.1, 0.2, 0.3)):
        write_wav(folder / f"noise_{i}.wav", noise(2.0, amplitude))
    return folder


@pytest.fixture(scope="module")
def built(model, collection, tmp_path_factory):
    index = AudioIndex.create(tmp_path_factory.mktemp("idx") / "index", model, "untrained-seed0")
    report = index.add(sorted(collection.iterdir()), model, num_workers=0, progress=False)
    index.build()
    assert len(report.added) == 8 and not report.skipped
    return index


def test_a_file_finds_itself_first(model, built, collection):
    for path in sorted(collection.iterdir()):
        top = built.search_file(path, model, k=3)[0]
        assert top.path == str(path) and top.score == pytest.approx(1.0, abs=1e-4)
        assert top.start is None and top.end is None


def test_a_sine_finds_sines_before_noise(model, built, tmp_path):
    query = write_wav(tmp_path / "q.wav", sine(700, 1.5, amplitude=0.2))
    hits = built.search_file(query, model, k=8)
    assert [h.rank for h in hits] == list(range(1, 9))
    assert all("sine_" in h.path for h in hits[:4]) and all("noise_" in h.path for h in hits[4:])
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_reopened_index_searches_the_same(model, built, collection):
    reopened = AudioIndex(built.folder)
    assert reopened.manifest["faiss"]["generation"] == reopened.manifest["generation"]
    query = model.embed(sine(800, 1.0), sample_rate=16000).embedding
    assert reopened.search_vector(query, 5) == built.search_vector(query, 5)


def test_segments_say_where_the_sound_is(model, tmp_path):
    quiet = noise(8.0, 0.02)
    quiet[5 * 16000 : 6 * 16000] = sine(600, 1.0, amplitude=0.4)  # the tone is at 5-6 s
    write_wav(tmp_path / "long.wav", quiet)
    for i in range(3):
        write_wav(tmp_path / f"other_{i}.wav", noise(3.0, 0.02 * (i + 1)))
    index = AudioIndex.create(tmp_path / "index", model, "untrained-seed0", segments=True)
    index.add(sorted(tmp_path.glob("*.wav")), model, num_workers=0, progress=False)
    assert len(index) == 4 + 8 + 3 * 3  # a clip row per file, a row per 1-s chunk
    top = index.search_audio(sine(600, 0.8, amplitude=0.3), 16000, model, k=4)[0]
    assert top.path.endswith("long.wav") and (top.start, top.end) == (5.0, 6.0)
    assert len({h.path for h in index.search_audio(sine(600, 0.8), 16000, model, k=4)}) == 4  # one hit per file


def test_unchanged_files_are_skipped_and_changed_ones_redone(model, tmp_path):
    a = write_wav(tmp_path / "a.wav", sine(300, 1.0))
    b = write_wav(tmp_path / "b.wav", noise(1.0, 0.1))
    index = AudioIndex.create(tmp_path / "index", model, "untrained-seed0")
    index.add([a, b], model, num_workers=0, progress=False)
    again = index.add([a, b, a], model, num_workers=0, progress=False)
    assert again.added == [] and again.unchanged == 2
    write_wav(b, sine(1200, 1.5))  # the file changes
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = index.add([a, b], model, num_workers=0, progress=False)
    assert changed.added == [str(b)] and changed.unchanged == 1
    assert sorted(index.table["path"]) == [str(a), str(b)]  # no duplicate row for b
    assert index.search_audio(sine(1200, 1.0), 16000, model, k=1)[0].path == str(b)


def test_bad_files_are_skipped_listed_and_retried(model, tmp_path):
    good = write_wav(tmp_path / "good.wav", sine(440, 1.0))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    index = AudioIndex.create(tmp_path / "index", model, "untrained-seed0")
    report = index.add([bad, good, empty], model, commit_every=1, num_workers=2, progress=False)
    assert report.added == [str(good)]
    assert [p for p, _ in report.skipped] == [str(bad), str(empty)]
    skipped = (tmp_path / "index" / "skipped.tsv").read_text().splitlines()
    assert skipped[0] == "path\treason" and len(skipped) == 3 and "empty file" in skipped[2]
    write_wav(bad, sine(880, 1.0))  # fixed: the next add takes it and drops it from skipped.tsv
    index.add([bad], model, num_workers=0, progress=False)
    assert list(index.skipped()) == [str(empty)] and len(index) == 2


def test_several_queries_in_one_search(model, built, collection, tmp_path, capsys):
    (tmp_path / "broken.wav").write_text("not audio")
    listed = tmp_path / "queries.txt"
    listed.write_text(f"# two more\n{collection / 'noise_1.wav'}\n\n{tmp_path / 'broken.wav'}\n")
    code = main(
        [
            "search",
            str(built.folder),
            str(collection / "sine_900.wav"),
            str(collection / "sine_300.wav"),
            "--queries",
            str(listed),
            "-k",
            "3",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "broken.wav" in captured.err  # one query could not be read: said, and the exit code
    results = [json.loads(line) for line in captured.out.splitlines()]  # JSON Lines, one per query, in order
    assert [r["query"].rsplit("/", 1)[-1] for r in results] == [
        "sine_900.wav",
        "sine_300.wav",
        "noise_1.wav",
        "broken.wav",
    ]
    for result in results[:3]:
        alone = built.search_file(result["query"], model, k=3)
        assert [h["path"] for h in result["results"]] == [h.path for h in alone]
        assert result["results"][0]["path"] == result["query"]
        assert np.allclose([h["score"] for h in result["results"]], [h.score for h in alone], atol=1e-5)
    assert results[3]["results"] == [] and "not readable" in results[3]["error"]
    assert main(["search", str(built.folder), str(collection), "-k", "1"]) == 0  # a folder: each file a query
    assert capsys.readouterr().out.count("query: ") == 8
    assert main(["search", str(built.folder)]) == 2 and "no query given" in capsys.readouterr().err


def test_another_model_is_refused(model, built, tmp_path, capsys):
    torch.manual_seed(123)
    other = DiverseEmbedder().eval()
    with pytest.raises(AudioIndexError, match="fingerprint"):
        built.search_audio(sine(440, 1.0), 16000, other)
    with pytest.raises(AudioIndexError, match="cannot be mixed"):
        built.add([tmp_path], other)
    other.save_pretrained(tmp_path / "other")
    query = write_wav(tmp_path / "q.wav", sine(440, 1.0))
    assert main(["search", str(built.folder), str(query), "--model", str(tmp_path / "other")]) == 2
    assert "fingerprint" in capsys.readouterr().err


def test_damaged_or_foreign_folders_are_refused(model, built, tmp_path):
    with pytest.raises(AudioIndexError, match="no such index folder"):
        AudioIndex(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(AudioIndexError, match="not an index folder"):
        AudioIndex(tmp_path / "plain")
    with pytest.raises(AudioIndexError, match="not empty"):
        AudioIndex.create(tmp_path / "plain", model, "untrained-seed0")
    (tmp_path / "plain" / "index.json").write_text('{"format": "something-else"}')
    with pytest.raises(AudioIndexError, match="not a diverse-embed index"):
        AudioIndex(tmp_path / "plain")
    (tmp_path / "plain" / "index.json").write_text('{"format": "diverse-embed-in')
    with pytest.raises(AudioIndexError, match="damaged manifest"):
        AudioIndex(tmp_path / "plain")
    import shutil

    copy = shutil.copytree(built.folder, tmp_path / "copy")
    next((copy / "shards").iterdir()).unlink()
    with pytest.raises(AudioIndexError, match="shard files missing"):
        AudioIndex(copy)


def test_short_silent_and_odd_queries(model, built, tmp_path):
    for name, audio in [("short", sine(440, 0.2)), ("silent", np.zeros(16000 * 3, np.float32))]:
        hits = built.search_file(write_wav(tmp_path / f"{name}.wav", audio), model, k=3)
        assert len(hits) == 3 and all(np.isfinite(h.score) for h in hits)
    with pytest.raises(ValueError, match="dimension"):
        built.search_vector(np.ones(10), k=3)
    assert len(built.search_vector(np.ones(256), k=100)) == 8  # k larger than the index


def run_cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "diverse_embed.cli", *map(str, args)], capture_output=True, text=True, cwd=REPO, **kwargs
    )


@pytest.mark.slow
def test_cli_build_info_search_json(collection, tmp_path):
    out = run_cli("index", "build", collection, "--output", tmp_path / "idx", "--segments", "-q")
    assert out.returncode == 0, out.stderr
    assert "added 8 file(s)" in out.stdout
    info = json.loads(run_cli("index", "info", tmp_path / "idx", "--json").stdout)
    assert info["files"] == 8 and info["vectors"] == 8 + 16 and info["faiss"] == "flat"
    found = run_cli("search", tmp_path / "idx", collection / "sine_500.wav", "-k", "3", "--json")
    result = json.loads(found.stdout)
    assert result["query"].endswith("sine_500.wav") and len(result["results"]) == 3
    first = result["results"][0]
    assert set(first) == {"rank", "path", "score", "start", "end"}
    assert first["rank"] == 1 and first["path"].endswith("sine_500.wav") and first["score"] > 0.999
    table = run_cli("search", tmp_path / "idx", collection / "sine_500.wav", "-k", "2").stdout
    assert "rank" in table and "sine_500.wav" in table
    again = run_cli("index", "add", tmp_path / "idx", collection, "-q")
    assert "added 0 file(s)" in again.stdout and "8 already indexed" in again.stdout


@pytest.mark.slow
def test_build_onto_an_index_of_other_files_says_so_and_the_same_build_resumes(collection, tmp_path):
    first = sorted(collection.iterdir())[:3]
    assert run_cli("index", "build", *first, "--output", tmp_path / "idx", "-q").returncode == 0
    other = run_cli("index", "build", collection / "noise_3.wav", "--output", tmp_path / "idx", "-q")
    assert other.returncode == 2 and "already holds an index of other files" in other.stderr
    assert "index add" in other.stderr and "another --output" in other.stderr and other.stderr.count("\n") == 1
    assert len(AudioIndex(tmp_path / "idx").files()) == 3  # nothing added behind the user's back
    again = run_cli("index", "build", *first, collection / "noise_3.wav", "--output", tmp_path / "idx", "-q")
    assert again.returncode == 0 and "added 1 file(s)" in again.stdout and "3 already indexed" in again.stdout


@pytest.mark.slow
def test_an_index_records_a_model_name_that_loads_it_again(model, tmp_path):
    from diverse_embed.resolve import untrained_model

    loaded = untrained_model()
    assert AudioIndex.create(tmp_path / "a", loaded).model_name == "untrained-seed0"  # the name it was loaded by
    with pytest.raises(AudioIndexError, match="not loaded by a name"):
        AudioIndex.create(tmp_path / "b", DiverseEmbedder(model.config))  # made in code: no name loads it
    with pytest.raises(AudioIndexError, match="cannot be loaded"):
        AudioIndex.create(tmp_path / "c", model, "my-model-name")  # the README's old example
    with pytest.raises(AudioIndexError, match="loads another model"):
        AudioIndex.create(tmp_path / "d", DiverseEmbedder(model.config), "untrained-seed0")
    model.save_pretrained(tmp_path / "saved")
    saved = DiverseEmbedder.from_pretrained(tmp_path / "saved")
    index = AudioIndex.create(tmp_path / "e", saved)
    assert index.model_name == str((tmp_path / "saved").resolve())
    assert not any((tmp_path / name).exists() for name in "bcd")  # a refused index leaves no folder
    write_wav(tmp_path / "q.wav", sine(440, 1.0))
    index.add([tmp_path / "q.wav"], saved, progress=False, num_workers=0)
    index.build()
    found = run_cli("search", tmp_path / "e", tmp_path / "q.wav", "--json")  # the CLI loads it by that name
    assert found.returncode == 0 and json.loads(found.stdout)["results"][0]["score"] > 0.999
    manifest = json.loads(
        (tmp_path / "e" / "index.json").read_text()
    )  # an index from before: a name that no longer loads
    (tmp_path / "e" / "index.json").write_text(json.dumps({**manifest, "model": "my-model-name"}))
    lost = run_cli("search", tmp_path / "e", tmp_path / "q.wav")
    assert lost.returncode == 2 and "--model" in lost.stderr and "'my-model-name'" in lost.stderr
    assert run_cli("search", tmp_path / "e", tmp_path / "q.wav", "--model", tmp_path / "saved").returncode == 0


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_index(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for i in range(24):
        write_wav(files / f"clip_{i:02d}.wav", sine(200 + 50 * i, 4.0) + noise(4.0, 0.01))
    build = [
        "index",
        "build",
        files,
        "--output",
        tmp_path / "killed",
        "--commit-every",
        "2",
        "--num-workers",
        "0",
        "--batch-size",
        "4",
        "-q",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "diverse_embed.cli", *map(str, build)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = tmp_path / "killed" / "index.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["generation"] >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = AudioIndex(tmp_path / "killed")
    committed = len(partial)
    assert 6 <= committed < 24, "the kill must land mid-build"
    assert run_cli(*build).returncode == 0  # the same command again resumes
    resumed = AudioIndex(tmp_path / "killed")
    assert len(resumed) == 24 and len(set(resumed.table["path"])) == 24
    assert run_cli("index", "build", files, "--output", tmp_path / "whole", "-q").returncode == 0
    whole = AudioIndex(tmp_path / "whole")
    order = np.argsort(resumed.table["path"])
    np.testing.assert_array_equal(resumed.table["path"][order], np.sort(whole.table["path"]))
    np.testing.assert_allclose(resumed.vectors()[order], whole.vectors()[np.argsort(whole.table["path"])], atol=1e-5)


@pytest.mark.slow
def test_two_ranks_under_torchrun_build_one_index(collection, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "diverse_embed.cli",
            "index",
            "build",
            str(collection),
            "--output",
            str(tmp_path / "ranks"),
            "--num-workers",
            "0",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    index = AudioIndex(tmp_path / "ranks")
    assert sorted(index.table["path"]) == sorted(str(p) for p in collection.iterdir())
    assert len(index.manifest["shards"]) == 2 and index.info()["faiss"] == "flat"


@pytest.mark.integration
def test_approximate_indexes_recall_against_exact():
    rng = np.random.default_rng(0)
    # Clustered vectors, as embeddings are: 1000 centres, points scattered around them.
    centres = rng.standard_normal((1000, 256)).astype(np.float32)
    xb = centres[rng.integers(0, 1000, 100_000)] + 0.35 * rng.standard_normal((100_000, 256)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xb[rng.choice(100_000, 200, replace=False)] + 0.05 * rng.standard_normal((200, 256)).astype(np.float32)
    _, exact = build_faiss_index(xb, "flat").search(xq, 10)
    # HNSW is the accurate approximate index; IVF-PQ trades recall for 40 bytes a vector (measured 0.46 here).
    for kind, floor in [("hnsw", 0.95), ("ivfpq", 0.4)]:
        _, approx = build_faiss_index(xb, kind).search(xq, 10)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        assert recall >= floor, f"{kind} recall@10 {recall:.3f}"


PEAK_MEMORY = """
import sys
from pathlib import Path
from diverse_embed import DEFAULT_MODEL, DiverseEmbedder
from diverse_embed import AudioIndex

def peak_mib(reset=False):
    # /proc's high-water mark, reset through clear_refs: getrusage's maxrss would carry over the
    # parent's (pytest's) peak across exec and could hide what the hour adds.
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024

index, model = AudioIndex(sys.argv[1]), DiverseEmbedder.from_pretrained(DEFAULT_MODEL)
model.embed_file(sys.argv[2])  # warm up: the forward pass's working memory at full batches
before = peak_mib(reset=True)
hits = index.search_file(sys.argv[3], model, k=3)
assert len(hits) == 3
print(peak_mib() - before)  # MiB the hour added
"""


@pytest.mark.integration
def test_an_hour_long_query_is_streamed(collection, tmp_path):
    import soundfile as sf

    out = run_cli("index", "build", collection, "--output", tmp_path / "idx", "-q")
    assert out.returncode == 0, out.stderr
    minute = write_wav(tmp_path / "minute.wav", sine(440, 60.0))
    hour = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(hour, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        for _ in range(60):  # one minute at a time: the test itself never holds the hour either
            f.write((0.1 * rng.standard_normal(16000 * 60)).astype(np.float32))
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(tmp_path / "idx"), str(minute), str(hour)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    added = int(done.stdout.split()[-1])
    # Decoded whole, the hour alone would take 230 MiB (float32 at 16 kHz), before any copy of it.
    # Streamed, what it adds is allocator slack, measured at about 80 MiB.
    assert added < 150, f"an hour-long query added {added} MiB of peak memory"


# ----- remove and sync -----------------------------------------------------------------------------


def _folder_of_clips(folder, count, seconds=2.0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_wav(folder / f"clip_{i:02d}.wav", sine(200 + 60 * i, seconds) + noise(seconds, 0.01))
    return folder


def test_removed_files_leave_the_results_and_can_come_back(model, tmp_path):
    files = _folder_of_clips(tmp_path / "files", 6)
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0", segments=True)
    index.add(sorted(files.iterdir()), model, num_workers=0, progress=False)
    index.build()
    gone = files / "clip_02.wav"
    report = index.remove([gone, tmp_path / "never_indexed.wav"])
    assert report.removed == [str(gone)]
    index.build()
    reopened = AudioIndex(tmp_path / "idx")
    assert str(gone) not in reopened.files() and len(reopened.files()) == 5
    assert len(reopened) == reopened.faiss_index.ntotal == 5 * 3  # a clip row and two 1-s segments each
    assert all(h.path != str(gone) for h in reopened.search_file(gone, model, k=10))
    assert reopened.remove([gone]).removed == []  # again: nothing to do
    reopened.add([gone], model, num_workers=0, progress=False)  # and it can be indexed again
    assert reopened.search_file(gone, model, k=1)[0].path == str(gone)
    assert reopened.remove([files]).removed == sorted(str(p) for p in files.iterdir())  # a folder: all in it
    assert len(reopened) == 0


def test_sync_adds_new_reembeds_changed_and_drops_vanished(model, tmp_path):
    files = _folder_of_clips(tmp_path / "files", 5)
    outside = write_wav(tmp_path / "outside.wav", sine(440, 1.0))
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0")
    index.add([*sorted(files.iterdir()), outside], model, num_workers=0, progress=False)
    (files / "clip_00.wav").unlink()
    write_wav(files / "clip_01.wav", noise(3.0, 0.2))  # changed: other content, size and time
    write_wav(files / "new.wav", sine(1200, 1.5))
    report = index.sync(files, model, num_workers=0, progress=False)
    assert report.removed == [str(files / "clip_00.wav")]
    assert sorted(report.added) == [str(files / "clip_01.wav"), str(files / "new.wav")]
    assert report.unchanged == 3
    assert sorted(index.files()) == sorted([str(p) for p in files.iterdir()] + [str(outside)])  # outside kept
    changed = index.table["path"].tolist().index(str(files / "clip_01.wav"))
    np.testing.assert_allclose(index.vectors()[changed], model.embed_file(files / "clip_01.wav").embedding, atol=1e-5)
    again = index.sync(files, model, num_workers=0, progress=False)
    assert (again.added, again.removed, again.unchanged) == ([], [], 5)


@pytest.mark.slow
def test_killed_sync_leaves_a_consistent_index_and_resumes(tmp_path):
    files = _folder_of_clips(tmp_path / "files", 4, seconds=4.0)
    assert run_cli("index", "build", files, "--output", tmp_path / "idx", "-q").returncode == 0
    (files / "clip_03.wav").unlink()
    for i in range(4, 28):
        write_wav(files / f"clip_{i:02d}.wav", sine(200 + 50 * i, 4.0) + noise(4.0, 0.01))
    sync = [
        "index",
        "sync",
        tmp_path / "idx",
        files,
        "--commit-every",
        "2",
        "--num-workers",
        "0",
        "--batch-size",
        "4",
        "-q",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "diverse_embed.cli", *map(str, sync)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = tmp_path / "idx" / "index.json"
    start_generation = json.loads(manifest.read_text())["generation"]
    deadline = time.time() + 120
    while time.time() < deadline:
        if json.loads(manifest.read_text())["generation"] >= start_generation + 4:  # the removal + 3 commits
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = AudioIndex(tmp_path / "idx")
    assert str(files / "clip_03.wav") not in partial.files()  # the removal was committed first
    assert 3 + 6 <= len(partial) < 27, "the kill must land mid-sync"
    assert partial.faiss_index.ntotal == len(partial)  # FAISS is stale: built in memory from the committed rows
    assert run_cli(*sync).returncode == 0  # the same command again resumes
    resumed = AudioIndex(tmp_path / "idx")
    assert sorted(resumed.files()) == sorted(str(p) for p in files.iterdir())
    assert resumed.info()["faiss"] == "flat" and resumed.faiss_index.ntotal == 27
    assert run_cli("index", "build", files, "--output", tmp_path / "whole", "-q").returncode == 0
    whole = AudioIndex(tmp_path / "whole")
    order = np.argsort(resumed.table["path"])
    np.testing.assert_allclose(resumed.vectors()[order], whole.vectors()[np.argsort(whole.table["path"])], atol=1e-5)


@pytest.mark.slow
def test_remove_and_sync_commands(collection, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for path in sorted(collection.iterdir())[:4]:
        (files / path.name).write_bytes(path.read_bytes())
    assert run_cli("index", "build", files, "--output", tmp_path / "idx", "-q").returncode == 0
    removed = run_cli("index", "remove", tmp_path / "idx", files / "noise_0.wav")
    assert removed.returncode == 0 and "removed 1 file(s); 3 file(s)" in removed.stdout
    synced = run_cli("index", "sync", tmp_path / "idx", files)  # noise_0 is still there: back it comes
    assert synced.returncode == 0 and "1 added or re-embedded, 0 removed, 3 unchanged" in synced.stdout
    assert f"  added {files / 'noise_0.wav'}" in synced.stdout.splitlines()  # says which
    (files / "noise_0.wav").unlink()
    again = run_cli("index", "sync", tmp_path / "idx", files)
    assert f"  removed {files / 'noise_0.wav'}" in again.stdout.splitlines()
    assert "embedding" not in again.stderr  # nothing to embed: no empty progress bar
    (files / "noise_0.wav").write_bytes(
        next(p for p in sorted(collection.iterdir()) if p.name == "noise_0.wav").read_bytes()
    )
    assert run_cli("index", "sync", tmp_path / "idx", files, "-q").returncode == 0
    missing = run_cli("index", "sync", tmp_path / "idx", tmp_path / "unplugged_drive", "-q")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    assert len(AudioIndex(tmp_path / "idx").files()) == 4


# ----- the compressed type ---------------------------------------------------------------------------


def _clustered(n, seed, d=256):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d)).astype(np.float32)
    data = centres[rng.integers(0, 50, n)] + rng.standard_normal((n, d)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def _fill(index, vectors, first=0, shard_rows=4000):
    """Commit synthetic clip vectors as files named row_<i> (no audio: the index takes the rows as given)."""
    for start in range(0, len(vectors), shard_rows):
        rows = [
            (
                f"/nowhere/row_{first + start + i:06d}.wav",
                np.array([np.nan]),
                np.array([np.nan]),
                v[None],
                1.0,
                (-1, -1),
            )
            for i, v in enumerate(vectors[start : start + shard_rows])
        ]
        index._commit(rows, [], AddReport())


@pytest.mark.slow
def test_compressed_index_reranks_with_exact_vectors_from_disk(model, tmp_path):
    vectors, queries = _clustered(12_000, seed=1), _clustered(12_000 + 50, seed=1)[12_000:]
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0", index_type="compressed")
    _fill(index, vectors)
    index.build()
    assert index.info()["faiss"] == "compressed"
    # The vectors are on disk once, in the shards: beside them only the codes and 8 bytes a row.
    folder = tmp_path / "idx"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "index.json",
        "rows.bin",
        "shards",
        "skipped.tsv",
        "vectors.faiss",
    ]
    assert (folder / "rows.bin").stat().st_size == 12_000 * 8
    reopened = AudioIndex(folder)  # loads the codes; reads rows and exact vectors from the shards
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    def recall(index) -> float:
        found = [[int(h.path[-10:-4]) for h in index.search_vector(q, k=10)] for q in queries]
        return np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])

    assert recall(reopened) >= 0.9 and reopened._table is None
    # As diverse-embed 0.2 built it: its exact vectors in vectors.f32, no side table.
    manifest = json.loads((folder / "index.json").read_text())
    del manifest["faiss"]["rows"]
    (folder / "index.json").write_text(json.dumps(manifest))
    (folder / "rows.bin").unlink()
    (folder / "vectors.f32").write_bytes(np.ascontiguousarray(reopened.vectors()).tobytes())
    old = AudioIndex(folder)
    assert recall(old) == recall(reopened) and isinstance(old.faiss_index, RefinedIndex)
    hit = reopened.search_vector(vectors[123], k=1)[0]
    assert hit.path.endswith("row_000123.wav") and hit.score == pytest.approx(1.0, abs=1e-5)  # an exact score
    reopened.remove([f"/nowhere/row_{i:06d}.wav" for i in range(100, 200)])
    reopened.build()
    assert (
        reopened.faiss_index.ntotal == 11_900 and not (folder / "vectors.f32").exists()
    )  # the next build drops the copy
    assert all(not h.path.endswith("row_000123.wav") for h in reopened.search_vector(vectors[123], k=10))


def test_too_few_vectors_for_the_compressed_type_fall_back_to_exact(model, collection, tmp_path):
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0", index_type="compressed")
    index.add(sorted(collection.iterdir()), model, num_workers=0, progress=False)
    index.build()
    assert index.info()["faiss"] == "flat" and not (tmp_path / "idx" / "vectors.f32").exists()


# ----- Parquet -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embed_and_export_to_parquet_read_back_by_pyarrow_and_duckdb(model, collection, tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    table_path = tmp_path / "clips.parquet"
    out = run_cli("embed", collection, "--output", table_path, "--segments", "--model", "untrained-seed0", "-q")
    assert out.returncode == 0, out.stderr
    table = pq.read_table(table_path)
    assert (
        table.schema.field("vector").type.list_size == 256
        and str(table.schema.field("vector").type.value_type) == "float"
    )
    assert table.num_rows == 8 * 3  # a clip row and two 1-s segments per 2-s file
    first = sorted(collection.iterdir())[0]
    rows = [r for r in table.to_pylist() if r["path"] == str(first)]
    assert [(r["start"], r["end"]) for r in rows] == [(None, None), (0.0, 1.0), (1.0, 2.0)]
    expected = model.embed_file(first)
    np.testing.assert_allclose(rows[0]["vector"], expected.embedding, atol=1e-5)
    assert {r["model"] for r in rows} == {"untrained-seed0"} and rows[0]["fingerprint"] == model.fingerprint()
    # The same rows through an index export, and read by DuckDB
    assert (
        run_cli(
            "index", "build", collection, "--output", tmp_path / "idx", "--segments", "--model", "untrained-seed0", "-q"
        ).returncode
        == 0
    )
    assert run_cli("index", "export", tmp_path / "idx", tmp_path / "index.parquet").returncode == 0
    con = duckdb.connect()
    count, dims, clips = con.execute(
        "SELECT count(*), min(len(vector)), count(*) FILTER (WHERE start IS NULL) FROM read_parquet(?)",
        [str(tmp_path / "index.parquet")],
    ).fetchone()
    assert (count, dims, clips) == (24, 256, 8)
    path, vector = con.execute(
        "SELECT path, vector FROM read_parquet(?) WHERE start IS NULL ORDER BY path LIMIT 1",
        [str(tmp_path / "index.parquet")],
    ).fetchone()
    assert path == str(first)
    np.testing.assert_allclose(vector, expected.embedding, atol=1e-5)
    assert run_cli("embed", collection, "--output", tmp_path / "x.npz", "--segments", "-q").returncode == 0
    assert len(np.load(tmp_path / "x.npz")["segment_paths"]) == 16  # the table's segment rows, in the .npz too


# ----- duplicates and tags ---------------------------------------------------------------------------


@pytest.mark.slow
def test_duplicates_groups_copies_and_near_copies_only(model, collection, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for path in sorted(collection.iterdir()):
        (files / path.name).write_bytes(path.read_bytes())
    (files / "copy_of_sine_500.wav").write_bytes((collection / "sine_500.wav").read_bytes())
    write_wav(files / "sine_500_quieter.wav", 0.8 * sine(500, 2.0, amplitude=0.4) + noise(2.0, 1e-4))
    assert (
        run_cli("index", "build", files, "--output", tmp_path / "idx", "--model", "untrained-seed0", "-q").returncode
        == 0
    )
    groups = AudioIndex(tmp_path / "idx").duplicates(threshold=0.999)
    assert [[os.path.basename(p) for p, _ in g] for g in groups] == [
        ["copy_of_sine_500.wav", "sine_500.wav", "sine_500_quieter.wav"]
    ]
    assert all(score >= 0.999 for _, score in groups[0])
    listed = json.loads(run_cli("duplicates", tmp_path / "idx", "--threshold", "0.999", "--json").stdout)
    assert [len(g["files"]) for g in listed] == [3]
    rows = run_cli("duplicates", tmp_path / "idx", "--threshold", "0.999", "--csv").stdout.splitlines()
    assert rows[0] == "group,path,similarity" and len(rows) == 4
    text = run_cli("duplicates", tmp_path / "idx", "--threshold", "0.999").stdout
    assert "highest cosine similarity to another file of its group" in text  # the column is explained
    assert len(list(files.iterdir())) == 10  # nothing deleted
    assert AudioIndex(tmp_path / "idx").duplicates(threshold=1.01) == []


def multi_corpus_tagger(folder, labels: list[str]) -> DiverseEmbedder:
    """A random model whose head names `labels` ("corpus/label"), saved to `folder`, a softmax per corpus."""
    from diverse_embed import DiverseEmbedConfig

    torch.manual_seed(0)
    model = DiverseEmbedder(
        DiverseEmbedConfig(
            num_labels=len(labels), id2label=dict(enumerate(labels)), problem_type="single_label_classification"
        )
    )
    model.save_pretrained(folder)
    return model


@pytest.mark.slow
def test_tag_prints_the_heads_top_labels(tmp_path):
    clip = write_wav(tmp_path / "tone.wav", sine(440, 2.5))
    out = run_cli("tag", clip, "-k", "3", "--segments", "--json", "-q")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["path"] == str(clip) and list(record["corpora"]) == ["general", "esc50"]  # the default's two
    for corpus, labels in record["corpora"].items():
        assert len(labels) == 3 and all(label["label"].startswith(f"{corpus}/") for label in labels)
        scores = [label["score"] for label in labels]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001  # that corpus's softmax
    assert [(s["start"], s["end"]) for s in record["segments"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]
    text = run_cli("tag", clip, "-q").stdout.splitlines()
    assert text[0] == f"{clip}:" and [line.split(":")[0].strip() for line in text[1:]] == ["general", "esc50"]
    assert all(line.count(",") == 4 for line in text[1:])  # five labels of each by default
    untrained = run_cli("tag", clip, "--model", "untrained-seed0", "-q")
    assert untrained.returncode == 2 and "no label names" in untrained.stderr


@pytest.mark.slow
def test_tag_reads_a_multi_label_head_with_sigmoids(tmp_path):
    from diverse_embed import DiverseEmbedConfig

    torch.manual_seed(0)
    labels = {0: "bark", 1: "rain", 2: "speech"}
    model = DiverseEmbedder(
        DiverseEmbedConfig(num_labels=3, id2label=labels, problem_type="multi_label_classification")
    )
    model.save_pretrained(tmp_path / "multi")
    clip = write_wav(tmp_path / "tone.wav", sine(440, 1.0))
    out = run_cli("tag", clip, "--model", tmp_path / "multi", "--json", "-q")
    assert out.returncode == 0, out.stderr
    scores = [label["score"] for label in json.loads(out.stdout)["labels"]]
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    assert sum(scores) > 1.0  # each label on its own (sigmoid), not shares of one (softmax)


@pytest.mark.slow
def test_tag_reads_a_multi_corpus_head_with_a_softmax_per_corpus(tmp_path):
    multi_corpus_tagger(tmp_path / "corpora", ["esc50/dog", "esc50/rain", "esc50/siren", "speech/yes", "speech/no"])
    clip = write_wav(tmp_path / "tone.wav", sine(440, 1.0))
    broadest = run_cli("tag", clip, "--model", tmp_path / "corpora", "-k", "5", "--json")
    assert broadest.returncode == 0 and "labels of corpus esc50" in broadest.stderr  # the largest label set
    assert sorted(label["label"] for label in json.loads(broadest.stdout)["labels"]) == [
        "esc50/dog",
        "esc50/rain",
        "esc50/siren",
    ]
    out = run_cli("tag", clip, "--model", tmp_path / "corpora", "-k", "5", "--corpus", "all", "--json", "-q")
    assert out.returncode == 0, out.stderr
    grouped = json.loads(out.stdout)["corpora"]  # every corpus's own best labels, apart
    assert sorted(grouped) == ["esc50", "speech"] and [len(grouped[c]) for c in ("esc50", "speech")] == [3, 2]
    assert all(
        sum(label["score"] for label in grouped[c]) == pytest.approx(1, abs=1e-3) for c in grouped
    )  # each sums to one
    text = run_cli("tag", clip, "--model", tmp_path / "corpora", "-k", "1", "--corpus", "all", "-q").stdout.splitlines()
    assert text[0].endswith("tone.wav:") and [line.split(":")[0].strip() for line in text[1:]] == ["esc50", "speech"]
    only = run_cli("tag", clip, "--model", tmp_path / "corpora", "--corpus", "speech", "--json", "-q")
    assert [label["label"] for label in json.loads(only.stdout)["labels"]] in (
        ["speech/yes", "speech/no"],
        ["speech/no", "speech/yes"],
    )
    unknown = run_cli("tag", clip, "--model", tmp_path / "corpora", "--corpus", "birds", "-q")
    assert unknown.returncode == 2 and "esc50, speech" in unknown.stderr


@pytest.mark.slow
def test_tag_from_python_is_what_the_command_prints(tmp_path):
    from diverse_embed import DiverseEmbedConfig, load_audio

    multi_corpus_tagger(tmp_path / "corpora", ["esc50/dog", "esc50/rain", "esc50/siren", "speech/yes", "speech/no"])
    model = DiverseEmbedder.from_pretrained(tmp_path / "corpora")
    clip = write_wav(tmp_path / "tone.wav", sine(440, 2.5))
    for corpus in (None, "all", "speech"):
        options = ["--corpus", corpus] if corpus else []
        printed = json.loads(
            run_cli("tag", clip, "--model", tmp_path / "corpora", "-k", "2", "--json", "-q", *options).stdout
        )
        groups = printed["corpora"].values() if "corpora" in printed else [printed["labels"]]
        expected = [(label["label"], label["score"]) for group in groups for label in group]
        found = model.tag(load_audio(clip), 16000, k=2, corpus=corpus)
        assert [(t["label"], round(t["score"], 4)) for t in found] == expected
    assert [t["label"].split("/")[0] for t in model.tag(load_audio(clip), 16000, k=5)] == [
        "esc50"
    ] * 3  # the largest corpus
    with pytest.raises(ValueError, match="corpora are esc50, speech"):
        model.tag(load_audio(clip), 16000, corpus="birds")
    with pytest.raises(ValueError, match="no label names"):
        DiverseEmbedder(DiverseEmbedConfig()).tag(load_audio(clip), 16000)


def test_tag_shows_the_general_labels_beside_the_largest_corpus(tmp_path):
    from diverse_embed import load_audio
    from diverse_embed.labels import label_groups

    labels = ["esc50/dog", "esc50/rain", "esc50/siren", "general/speech", "general/animal", "nemo/joy"]
    assert list(label_groups(labels)) == ["general", "esc50"]  # the kind of sound, then the detail
    assert list(label_groups(labels, "nemo")) == ["nemo"]
    model = multi_corpus_tagger(tmp_path / "m", labels)
    clip = write_wav(tmp_path / "tone.wav", sine(440, 1.0))
    found = model.tag(load_audio(clip), 16000, k=1)
    assert [t["label"].split("/")[0] for t in found] == ["general", "esc50"]
    out = run_cli("tag", clip, "--model", tmp_path / "m", "-k", "1", "--json")
    assert out.returncode == 0 and "labels of corpus general and esc50" in out.stderr
    assert list(json.loads(out.stdout)["corpora"]) == ["general", "esc50"]


def test_an_index_built_by_release_ff8bb69_opens_searches_and_grows(tmp_path, caplog):
    """tests/fixtures/index_ff8bb69: three samples indexed with segments by main ff8bb69 with
    untrained-seed0, then noise_bursts.wav removed (a tombstone shard), as its command line did."""
    import shutil
    from importlib.resources import files

    from diverse_embed.resolve import untrained_model

    caplog.set_level("INFO")
    folder = shutil.copytree(REPO / "tests" / "fixtures" / "index_ff8bb69", tmp_path / "old")
    index = AudioIndex(folder)
    assert index.info()["files"] == 2 and index.info()["vectors"] == 6 and index.info()["faiss"] == "flat"
    model = untrained_model()
    samples = Path(str(files("diverse_embed") / "samples"))
    hits = index.search_file(samples / "note_220hz_harmonic.wav", model, k=2)
    assert hits[0].path == "/tmp/fx/samples/note_220hz_harmonic.wav" and hits[0].score > 0.999
    assert {h.path for h in hits} == {
        "/tmp/fx/samples/note_220hz_harmonic.wav",
        "/tmp/fx/samples/clicks_4_per_second.wav",
    }
    report = index.add([samples / "noise_bursts.wav"], model, progress=False, num_workers=0)
    index.build()
    assert len(report.added) == 1 and AudioIndex(folder).info()["files"] == 3
    # It records 0.1's kind of fingerprint (the head weighed too): recognised, and said once.
    assert index.manifest["fingerprint"] == model.fingerprint_0_1() != model.fingerprint()
    assert sum("fingerprint of diverse-embed 0.1" in r.message for r in caplog.records) == 1


def test_a_new_head_on_the_same_branches_searches_the_index(model, collection, tmp_path, capsys):
    """train --init-from with frozen branches changes the head only: the vectors, and so the
    fingerprint, stay, and `search IDX --model runs/mine` answers instead of asking for a re-index."""
    import dataclasses

    model.save_pretrained(tmp_path / "m")
    index = AudioIndex.create(tmp_path / "idx", DiverseEmbedder.from_pretrained(tmp_path / "m"))
    index.add(sorted(collection.iterdir())[:3], progress=False, num_workers=0)
    index.build()
    mine = DiverseEmbedder(dataclasses.replace(model.config, num_labels=2, id2label={0: "hum", 1: "hiss"}))
    mine.branches.load_state_dict(model.branches.state_dict())
    mine.save_pretrained(tmp_path / "mine")
    query = sorted(collection.iterdir())[0]
    assert (
        main(
            ["search", str(tmp_path / "idx"), str(query), "--model", str(tmp_path / "mine"), "-k", "1", "--json", "-q"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["results"][0]["path"].endswith(query.name)


def test_an_index_refuses_what_its_model_name_loads_when_that_changed(model, collection, tmp_path, capsys):
    import dataclasses

    model.save_pretrained(tmp_path / "m")
    index = AudioIndex.create(tmp_path / "idx", DiverseEmbedder.from_pretrained(tmp_path / "m"))  # recorded by folder
    index.add(sorted(collection.iterdir())[:2], progress=False, num_workers=0)
    index.build()
    changed = DiverseEmbedder.from_pretrained(tmp_path / "m")
    changed.config = dataclasses.replace(changed.config, min_final_chunk_seconds=0.5)  # same weights, another rule
    changed.save_pretrained(tmp_path / "m")
    query = sorted(collection.iterdir())[0]
    with pytest.raises(AudioIndexError, match="now loads fingerprint"):
        AudioIndex(tmp_path / "idx").search_file(query, k=1)
    assert main(["search", str(tmp_path / "idx"), str(query)]) == 2
    assert "cannot be mixed" in capsys.readouterr().err


def test_without_a_model_an_index_uses_its_own(collection, tmp_path):
    index = AudioIndex.create(tmp_path / "idx", model_name="untrained-seed0")  # loaded by that name
    index.add(sorted(collection.iterdir())[:3], progress=False, num_workers=0)
    index.build()
    again = AudioIndex(tmp_path / "idx")
    hits = again.search_file(sorted(collection.iterdir())[0], k=1)  # the index loads the model it records
    assert hits[0].path.endswith(sorted(collection.iterdir())[0].name) and hits[0].score > 0.999
    assert again.check_model() is again.check_model()  # loaded once


@pytest.mark.parametrize("index_type", ["flat", "compressed"])
def test_a_search_holds_no_per_row_table(model, tmp_path, index_type):
    """A searching process holds the FAISS codes and nothing per row: hits' paths and times are read
    from the shards where rows.bin says they are; without it (an older index, damage, an add since
    the build) the shards' table is read as before, with the same hits."""
    from diverse_embed.search.index_types import COMPRESSED_MIN_VECTORS

    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0", segments=True, index_type=index_type)
    n = COMPRESSED_MIN_VECTORS if index_type == "compressed" else 300
    vectors = np.random.default_rng(0).standard_normal((n, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"/sounds/{'é' if i % 7 == 0 else ''}file_{i // 3}.wav" for i in range(n)]  # three rows a file
    starts = np.array([np.nan if i % 3 == 0 else float(i % 3 - 1) for i in range(n)])
    runs = [i for i in range(n) if i == 0 or names[i] != names[i - 1]] + [n]  # each file's rows, together
    index._commit(
        [(names[a], starts[a:b], starts[a:b] + 1, vectors[a:b], 2.0, (1, 1)) for a, b in zip(runs, runs[1:])],
        [],
        AddReport(),
    )
    index.build()
    searched = AudioIndex(tmp_path / "idx")
    hits = searched.search_vector(vectors[4], k=5)
    assert searched._table is None and len(searched) == n  # no per-row table in RAM
    assert (hits[0].path, hits[0].start, hits[0].end) == (names[4], 0.0, 1.0) and hits[0].score == pytest.approx(1.0)
    assert len({h.path for h in hits}) == 5
    rows = (tmp_path / "idx" / "rows.bin").read_bytes()
    (tmp_path / "idx" / "rows.bin").write_bytes(np.full(n, 99, "<u4").repeat(2).tobytes())  # names a 100th shard
    with pytest.raises(AudioIndexError, match="damaged side table"):
        AudioIndex(tmp_path / "idx").search_vector(vectors[4], k=5)
    (tmp_path / "idx" / "rows.bin").write_bytes(rows[:-20])  # damaged
    fallback = AudioIndex(tmp_path / "idx")
    again = fallback.search_vector(vectors[4], k=5)
    assert [(h.path, h.start, h.end) for h in again] == [(h.path, h.start, h.end) for h in hits]
    assert [h.score for h in again] == pytest.approx([h.score for h in hits], abs=1e-5) and fallback._table is not None


def test_searching_by_vector_imports_neither_torch_nor_pyarrow(built):
    """A process that searches by vector holds the index, not the libraries of embedding."""
    script = (
        "import sys, numpy as np; from diverse_embed.search.index import AudioIndex; "
        "index = AudioIndex(sys.argv[1]); hits = index.search_vector(np.ones(256, np.float32), 3); "
        "print(len(hits), sorted(m for m in ('torch', 'pyarrow', 'torchaudio', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(built.folder)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[]"]


def test_the_newest_rows_of_a_path_are_found_by_hash_whether_stored_as_text_or_bytes():
    from diverse_embed.search.store import newest_rows, path_hashes

    older = path_hashes(np.array(["/a.wav", "/a.wav", "/b.wav", "/é.wav"]))  # a version 2 shard: text
    newer = path_hashes(np.array([os.fsencode(p) for p in ["/c.wav", "/é.wav", "/b.wav"]]))  # version 3: bytes
    assert [k.tolist() for k in newest_rows([older, newer, np.zeros((0, 2), np.uint64)])] == [
        [True, True, False, False],
        [True, True, True],
        [],
    ]
    assert newest_rows([]) == [] and len(path_hashes(np.array(["/x"]))[0]) == 2


def test_a_build_and_a_search_keep_few_files_open_whatever_the_number_of_shards(model, tmp_path):
    """A build once held every shard open (1,500 at 10^8 rows, past a common limit of 1,024)."""
    index = AudioIndex.create(tmp_path / "idx", model, "untrained-seed0")
    vectors = _clustered(150, seed=3)
    _fill(index, vectors, shard_rows=1)  # 150 shards
    script = (
        "import resource, sys, numpy as np; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100)); "
        "from diverse_embed.search.index import AudioIndex; AudioIndex(sys.argv[1]).build(); "
        "index = AudioIndex(sys.argv[1]); vectors = np.load(sys.argv[2]); "
        "print(sum(index.search_vector(v, k=150)[0].path.endswith(f'row_{i:06d}.wav') for i, v in enumerate(vectors)))"
    )
    np.save(tmp_path / "v.npy", vectors)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "idx"), str(tmp_path / "v.npy")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["150"]
