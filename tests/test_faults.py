"""Fault injection with real processes: a training run killed with SIGKILL resumes to the same
weights; a disk that fills up while an index is saved leaves the previous index whole; two
processes adding to one index at once both land, once each. (A killed `index build` is in
test_index.py.)"""

import json
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.torch

from conftest import REPO, sine, write_wav
from diverse_embed import AudioIndex

RNG = np.random.default_rng(0)


def clips(folder, count, seconds=2.0, offset=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(offset, offset + count):
        audio = sine(200 + 40 * i, seconds, amplitude=0.3) + (0.01 * RNG.standard_normal(int(seconds * 16000))).astype(
            np.float32
        )
        write_wav(folder / f"clip_{i:03d}.wav", audio)
    return folder


def cli(*args, **kwargs):
    return [sys.executable, "-m", "diverse_embed.cli", *map(str, args)]


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    folder = clips(tmp_path / "audio", 12, seconds=3.0)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,labels,split\n"
        + "".join(
            f"clip_{i:03d}.wav,{'low' if i < 6 else 'high'},{'val' if i % 4 == 0 else 'train'}\n" for i in range(12)
        )
    )
    common = [
        "train",
        "--dataset",
        "csv",
        "--manifest",
        manifest,
        "--audio-root",
        folder,
        "--train-splits",
        "train",
        "--val-splits",
        "val",
        "--test-splits",
        "val",
        "--cache-dir",
        tmp_path / "cache",
        "--branches",
        "timbre,waveform",
        "--neuralogram-epochs",
        "1",
        "--branch-epochs",
        "3",
        "--fusion-epochs",
        "2",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--checkpoint-every",
        "1",
        "--quiet",
    ]
    assert (
        subprocess.run(cli(*common, "--output", tmp_path / "straight"), cwd=REPO, capture_output=True).returncode == 0
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        cli(*common, "--output", killed), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = killed / "train_log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:  # kill it in the second branch's phase
        if log.exists() and '"phase": "branch:waveform", "step": 2' in log.read_text():
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists()
    resumed = subprocess.run(cli(*common, "--output", killed, "--resume"), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '"resumed": true' in log.read_text()
    a = safetensors.torch.load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = safetensors.torch.load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_a_full_disk_during_an_index_save_keeps_the_previous_index(tmp_path):
    first, second = clips(tmp_path / "first", 4), clips(tmp_path / "second", 40, offset=100)
    index_dir = tmp_path / "idx"
    build = subprocess.run(
        cli("index", "build", first, "--output", index_dir, "-q", "--model", "untrained-seed0", "--num-workers", "0"),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    before = AudioIndex(index_dir)
    vectors_before = before.vectors().copy()

    def small_disk():  # every file this process writes may hold at most 20 kB: the shard of 40 clips cannot
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    full = subprocess.run(
        cli("index", "add", index_dir, second, "-q", "--num-workers", "0", "--commit-every", "100"),
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
    )
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
    assert (
        "error: cannot write" in full.stderr and "File too large" in full.stderr and "keeps what it had" in full.stderr
    )
    after = AudioIndex(index_dir)  # still opens: the manifest still names only what was committed
    assert sorted(after.files()) == sorted(before.files())
    np.testing.assert_array_equal(after.vectors(), vectors_before)
    assert after.search_file(first / "clip_000.wav", _model(), k=1)[0].path.endswith("clip_000.wav")
    # With room again, the same command adds everything, once.
    again = subprocess.run(
        cli("index", "add", index_dir, second, "-q", "--num-workers", "0"), cwd=REPO, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(AudioIndex(index_dir).files()) == 44 and len(set(AudioIndex(index_dir).table["path"])) == 44


@pytest.mark.slow
def test_two_processes_adding_at_once_both_land_once(tmp_path):
    a, b = clips(tmp_path / "a", 10), clips(tmp_path / "b", 10, offset=50)
    index_dir = tmp_path / "idx"
    assert (
        subprocess.run(
            cli(
                "index",
                "build",
                clips(tmp_path / "seed", 1, offset=90),
                "--output",
                index_dir,
                "-q",
                "--model",
                "untrained-seed0",
                "--num-workers",
                "0",
            ),
            cwd=REPO,
        ).returncode
        == 0
    )
    runs = [
        subprocess.Popen(
            cli("index", "add", index_dir, folder, "-q", "--num-workers", "0", "--commit-every", "2"),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (a, b)
    ]
    results = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-1000:] for _, err in results]
    index = AudioIndex(index_dir)
    paths = list(index.table["path"])
    assert len(paths) == len(set(paths)) == 21
    assert json.loads((index_dir / "index.json").read_text())["shards"]  # a manifest that names its shards


def _model():
    from diverse_embed.resolve import untrained_model

    return untrained_model()


@pytest.mark.integration
def test_the_fault_injection_script_loses_nothing(tmp_path):
    """scripts/fault_injection.py: kills at each rename (strace), a full disk, fuzzed index files."""
    if not shutil.which("strace"):
        pytest.skip("strace not found (apt-get install strace; .ci/run installs it): no kills at renames")
    done = subprocess.run(
        [
            sys.executable,
            "scripts/fault_injection.py",
            "--work",
            tmp_path / "work",
            "--json",
            tmp_path / "counts.json",
            "--fuzz",
            "30",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    counts = json.loads((tmp_path / "counts.json").read_text())["all"]
    assert done.returncode == 0 and counts["lost"] == 0 and counts["tracebacks"] == 0, done.stdout[-3000:]
    assert counts["injected"] >= 80 and counts["survived"] == counts["injected"]


@pytest.mark.integration
def test_fuzzed_inputs_never_give_a_traceback_or_lose_a_file(tmp_path):
    """scripts/fuzz_inputs.py: audio headers, configs, weights, index files and command lines."""
    done = subprocess.run(
        [
            sys.executable,
            "scripts/fuzz_inputs.py",
            "--work",
            tmp_path / "work",
            "--json",
            tmp_path / "counts.json",
            "--cases",
            "100",
            "--seed",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    counts = json.loads((tmp_path / "counts.json").read_text())["all"]
    assert done.returncode == 0 and counts["tracebacks"] == 0 and counts["lost"] == 0, done.stdout[-3000:]
