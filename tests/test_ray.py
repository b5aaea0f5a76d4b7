"""Vectors made elsewhere: EmbedBatch (Ray Data's map_batches), `embed --ray` into a Parquet
dataset, and `index build|add --from-parquet`. The Ray cluster tests are integration tests."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import REPO, noise, sine, write_wav
from diverse_embed.cli import main
from diverse_embed.parquet import schema

UNTRAINED = ["--model", "untrained-seed0", "-q", "--num-workers", "0"]


@pytest.fixture()
def sounds(tmp_path):
    """Three clips (one at 44.1 kHz, one of 2.5 s) and a file that is not audio."""
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "a.wav", sine(440, 2.5))
    write_wav(src / "b.wav", noise(1.2))
    write_wav(src / "c.wav", sine(660, 1.5, rate=44100), rate=44100)
    (src / "z.wav").write_bytes(b"not audio at all")
    return src


def rows_by_path(table) -> dict:
    """(path, start) -> (vector, error) of a Parquet table."""
    columns = table.to_pydict()
    return {
        (p, s): (v, e) for p, s, v, e in zip(columns["path"], columns["start"], columns["vector"], columns["error"])
    }


def test_embed_batch_gives_embeds_rows_from_paths_and_from_bytes(sounds, tmp_path):
    from diverse_embed.ray import EmbedBatch

    assert main(["embed", str(sounds), "-o", str(tmp_path / "e.parquet"), "--segments", *UNTRAINED]) == 0
    expected = pq.read_table(tmp_path / "e.parquet")
    embed_batch = EmbedBatch("untrained-seed0", segments=True)
    paths = sorted(str(p) for p in sounds.iterdir())
    from_paths = embed_batch({"path": np.array(paths)})  # Ray's default batch format: numpy arrays
    from_bytes = embed_batch(
        {"path": np.array(paths), "bytes": np.array([open(p, "rb").read() for p in paths], object)}
    )
    for table in (from_paths, from_bytes):
        assert table.schema.equals(expected.schema, check_metadata=True)
        assert table.schema == schema(256, "untrained-seed0", embed_batch.fingerprint)
        got, want = rows_by_path(table), rows_by_path(expected)
        assert got.keys() == want.keys() and sum(start is None for _, start in got) == 4 < len(
            got
        )  # clips and segments
        for key, (vector, error) in want.items():
            assert (got[key][1] is None) == (error is None)
            if error is None:
                np.testing.assert_allclose(got[key][0], vector, atol=1e-6)
    bad = rows_by_path(from_bytes)[(str(sounds / "z.wav"), None)]
    assert np.isnan(bad[0]).all() and "not readable as audio" in bad[1]  # no vector: NaN


def test_embed_parquet_keeps_a_row_per_bad_file_and_npz_does_not(sounds, tmp_path, capsys):
    assert main(["embed", str(sounds), "-o", str(tmp_path / "e.parquet"), *UNTRAINED]) == 0
    assert main(["embed", str(sounds), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 0
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert (
        table["error"].count(None) == 3 and np.isnan(table["vector"][table["path"].index(str(sounds / "z.wav"))]).all()
    )
    assert len(np.load(tmp_path / "e.npz")["paths"]) == 3
    assert "skipped 1 unreadable" in capsys.readouterr().out


@pytest.mark.parametrize("segments", [False, True])
def test_index_from_parquet_searches_as_the_index_of_the_files(sounds, tmp_path, capsys, segments):
    flag = ["--segments"] if segments else []
    assert main(["embed", str(sounds), "-o", str(tmp_path / "e.parquet"), "--segments", *UNTRAINED]) == 0
    assert main(["index", "build", str(sounds), "-o", str(tmp_path / "files"), *flag, *UNTRAINED]) == 0
    assert (
        main(
            [
                "index",
                "build",
                "--from-parquet",
                str(tmp_path / "e.parquet"),
                "-o",
                str(tmp_path / "table"),
                *flag,
                "-q",
            ]
        )
        == 0
    )  # the model is the one the table names
    from diverse_embed.search.index import AudioIndex

    files, table = AudioIndex(tmp_path / "files"), AudioIndex(tmp_path / "table")
    assert table.model_name == "untrained-seed0" and table.manifest["fingerprint"] == files.manifest["fingerprint"]
    assert len(table) == len(files) == (10 if segments else 3) and table.skipped() == files.skipped()
    for query in ["a.wav", "b.wav", "c.wav"]:
        want = files.search_file(sounds / query, k=3)
        got = table.search_file(sounds / query, k=3)
        assert [(h.path, h.start) for h in got] == [(h.path, h.start) for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-6)
    capsys.readouterr()
    # The files are here and unchanged, so a sync embeds nothing again.
    assert main(["index", "sync", str(tmp_path / "table"), str(sounds), "-q"]) == 0
    assert "0 added or re-embedded" in capsys.readouterr().out


def test_index_add_from_parquet_refuses_another_model_and_a_broken_table(sounds, tmp_path, capsys):
    assert main(["index", "build", str(sounds / "a.wav"), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    assert (
        main(["embed", str(sounds / "b.wav"), "-o", str(tmp_path / "other.parquet"), "-q", "--num-workers", "0"]) == 0
    )
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 and then nothing")
    capsys.readouterr()
    assert main(["index", "add", str(tmp_path / "idx"), "--from-parquet", str(tmp_path / "other.parquet"), "-q"]) == 2
    assert "rows of another model" in capsys.readouterr().err
    assert main(["index", "add", str(tmp_path / "idx"), "--from-parquet", str(tmp_path / "broken.parquet"), "-q"]) == 2
    assert "broken.parquet: not readable as Parquet" in capsys.readouterr().err
    assert (
        main(
            [
                "index",
                "add",
                str(tmp_path / "idx"),
                str(sounds / "b.wav"),
                "--from-parquet",
                str(tmp_path / "other.parquet"),
            ]
        )
        == 2
    )
    from diverse_embed.search.index import AudioIndex

    assert list(AudioIndex(tmp_path / "idx").files()) == [str(sounds / "a.wav")]  # nothing was added
    assert main(["embed", str(sounds / "b.wav"), "-o", str(tmp_path / "same.parquet"), *UNTRAINED]) == 0
    assert (
        main(["index", "add", str(tmp_path / "idx"), "--from-parquet", str(tmp_path), "-q"]) == 2
    )  # a folder: other.parquet too
    assert main(["index", "add", str(tmp_path / "idx"), "--from-parquet", str(tmp_path / "same.parquet"), "-q"]) == 0
    assert sorted(AudioIndex(tmp_path / "idx").files()) == [str(sounds / "a.wav"), str(sounds / "b.wav")]


# --- on a local Ray cluster ---------------------------------------------------------------------------


def esc50_folder(esc50, tmp_path, count: int):
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted((esc50 / "audio").iterdir())[:count]:
        os.symlink(path, src / path.name)
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00")
    return src


def run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=600, **kwargs
    )


@pytest.mark.integration
@pytest.mark.slow
def test_embed_on_a_local_ray_cluster_of_two_gives_embeds_table(esc50, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    src = esc50_folder(esc50, tmp_path, 12)
    done = run("-m", "diverse_embed.cli", "embed", src, "-o", tmp_path / "e.parquet", "--segments", "-q")
    assert done.returncode == 0, done.stderr
    done = run(
        "-m",
        "diverse_embed.cli",
        "embed",
        src,
        "-o",
        tmp_path / "dataset",
        "--segments",
        "--ray",
        "--ray-workers",
        "2",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert "embedded 12 file(s)" in done.stdout and "1 could not be embedded" in done.stdout
    expected, got = pq.read_table(tmp_path / "e.parquet"), ds.dataset(tmp_path / "dataset").to_table()
    assert len(list((tmp_path / "dataset").glob("*.parquet"))) > 1  # one file per block, blocks on both workers
    assert got.schema.equals(expected.schema, check_metadata=True)
    want, have = rows_by_path(expected), rows_by_path(got)
    assert have.keys() == want.keys() and len(have) == 12 * 6 + 1
    for key, (vector, error) in want.items():
        if error is None:
            np.testing.assert_allclose(have[key][0], vector, atol=1e-6)
        else:
            assert np.isnan(have[key][0]).all() and have[key][1] == error


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_ray_run_resumes_without_embedding_done_files_again(esc50, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    src = esc50_folder(esc50, tmp_path, 16)
    out = tmp_path / "dataset"
    script = (
        "import sys; from pathlib import Path; from diverse_embed.files import find_audio_files; "
        "from diverse_embed.ray import embed_dataset; "
        "print(embed_dataset(find_audio_files([sys.argv[1]]), Path(sys.argv[2]), workers=2, files_per_block=1, "
        "progress=False))"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", script, src, out],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list(out.glob("part-*.parquet")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the cluster it started
    first.wait()
    parts = list(out.glob("part-*.parquet"))
    written = {p for part in parts for p in pq.read_table(part).column("path").to_pylist()}
    assert 1 <= len(written) < 17
    second = run("-c", script, src, out)
    assert second.returncode == 0, second.stderr
    embedded, failed, skipped = eval(second.stdout.strip().splitlines()[-1])
    assert skipped == len(written) and embedded + failed == 17 - len(written)
    paths = ds.dataset(out).to_table().column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 17  # every file once: none embedded twice
    assert not list(out.glob(".*.tmp"))


@pytest.mark.integration
@pytest.mark.slow
def test_embed_batch_in_a_ray_pipeline_from_bytes_writes_embeds_table(esc50, tmp_path):
    """The docs' pipeline: read_binary_files (bytes and path), map_batches(EmbedBatch), write_parquet."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    src = esc50_folder(esc50, tmp_path, 6)
    script = """
import sys, ray
from diverse_embed.ray import EmbedBatch
ray.init(num_cpus=3, logging_level="ERROR")  # two for the models, one for reading: else reads wait forever
files = ray.data.read_binary_files(sys.argv[1], include_paths=True)
vectors = files.map_batches(EmbedBatch, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_size=2)
vectors.write_parquet(sys.argv[2])
"""
    done = run("-c", script, src, tmp_path / "pipeline")
    assert done.returncode == 0, done.stderr[-2000:]
    assert run("-m", "diverse_embed.cli", "embed", src, "-o", tmp_path / "e.parquet", "-q").returncode == 0
    expected, got = pq.read_table(tmp_path / "e.parquet"), ds.dataset(tmp_path / "pipeline").to_table()
    assert got.schema.remove_metadata().equals(expected.schema.remove_metadata())
    want = rows_by_path(expected)
    have = {(os.path.join(str(src), os.path.basename(p)), s): row for (p, s), row in rows_by_path(got).items()}
    assert have.keys() == want.keys() and len(have) == 7
    for key, (vector, error) in want.items():
        if error is None:
            np.testing.assert_allclose(have[key][0], vector, atol=1e-6)
        else:
            assert np.isnan(have[key][0]).all() and "not readable as audio" in have[key][1]
