"""Each script in examples/ runs, as a user would run it, on generated sounds."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, sine, write_wav

pytestmark = pytest.mark.slow  # subprocesses, an exporter or a browser: seconds each


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Two classes, six files each: tones and noise."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    (folder / "tone").mkdir()
    (folder / "noise").mkdir()
    for i in range(6):
        write_wav(folder / "tone" / f"tone_{i}.wav", sine(300 + 150 * i, 1.5, amplitude=0.3))
        write_wav(folder / "noise" / f"noise_{i}.wav", (0.05 * (i + 1) * rng.standard_normal(24000)).astype(np.float32))
    return folder


def run_example(name, *args, cwd):
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_search_collection(labelled, tmp_path):
    query = write_wav(tmp_path / "query.wav", sine(500, 1.0, amplitude=0.3))
    out = run_example("search_collection.py", labelled, query, "--index", tmp_path / "idx", "-k", "3", cwd=tmp_path)
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("1. ") and all("tone_" in line for line in lines)
    again = run_example("search_collection.py", labelled, query, "--index", tmp_path / "idx", cwd=tmp_path)
    assert again.splitlines()[0] == lines[0]  # the reused index answers the same


def test_embed_and_cluster(labelled, tmp_path):
    out = run_example(
        "embed_and_cluster.py", labelled, "--clusters", "2", "--output", tmp_path / "map.png", cwd=tmp_path
    )
    groups = [line for line in out.splitlines() if line.startswith("group ")]
    assert len(groups) == 2
    # Tones and noise fall into separate groups.
    assert all(("tone_" in g) != ("noise_" in g) for g in groups)
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_linear_probe(labelled, tmp_path):
    out = run_example("linear_probe.py", labelled, "--test-size", "0.5", cwd=tmp_path)
    accuracy = float(out.split("test accuracy:")[1])
    assert accuracy == 1.0, out
