"""The bad-input corpus (tests/badaudio) through every entry point, and property-based tests of
loading, embedding and the front ends on random arrays. Every file's fate is pinned: embedded,
or refused with an error that names the file and says why; one bad file never stops the rest."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from badaudio import make_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import REPO
from diverse_embed.audio import AudioLoadError, load_audio, prepare_waveform
from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.files import find_audio_files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("badaudio")
    return folder, make_corpus(folder)


def test_every_case_is_found_by_the_file_finder(corpus):
    folder, cases = corpus
    assert sorted(p.name for p in find_audio_files([folder])) == sorted(c.name for c in cases)


def test_load_audio_accepts_or_refuses_each_case_as_pinned(corpus):
    folder, cases = corpus
    for case in cases:
        path = folder / case.name
        if case.ok:
            audio = load_audio(path)
            assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all(), case.name
            assert abs(len(audio) / 16000 - case.seconds) < 1e-3, case.name
        else:
            with pytest.raises(AudioLoadError) as err:
                load_audio(path)
            assert case.name in str(err.value) and case.reason in str(err.value), str(err.value)


def test_every_accepted_case_embeds_to_a_finite_unit_vector(corpus, model):
    folder, cases = corpus
    for case in (c for c in cases if c.ok):
        out = model.embed(load_audio(folder / case.name), sample_rate=16000)
        assert out.embedding.shape == (256,) and np.isfinite(out.embedding).all(), case.name
        norm = np.linalg.norm(out.embedding)
        # DC and one sample can be silent to every branch after its normalisation: zero or unit.
        assert abs(norm - 1) < 1e-4 or norm == 0, (case.name, norm)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "diverse_embed.cli", *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


@pytest.mark.slow
def test_embed_command_embeds_the_good_and_names_the_bad(corpus, tmp_path):
    folder, cases = corpus
    out = run_cli(
        "embed", folder, "--output", tmp_path / "e.npz", "-q", "--num-workers", "2", "--model", "untrained-seed0"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    saved = np.load(tmp_path / "e.npz")
    assert sorted(p.split("/")[-1] for p in saved["paths"]) == sorted(c.name for c in cases if c.ok)
    assert np.isfinite(saved["embeddings"]).all()
    for case in (c for c in cases if not c.ok):
        assert case.name in out.stderr and case.reason in out.stderr, case.name


@pytest.mark.slow
def test_index_build_indexes_the_good_and_lists_the_bad(corpus, tmp_path):
    from diverse_embed import AudioIndex

    folder, cases = corpus
    out = run_cli(
        "index",
        "build",
        folder,
        "--output",
        tmp_path / "idx",
        "-q",
        "--model",
        "untrained-seed0",
        "--commit-every",
        "5",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    index = AudioIndex(tmp_path / "idx")
    assert sorted(p.split("/")[-1] for p in index.files()) == sorted(c.name for c in cases if c.ok)
    skipped = {path.split("/")[-1]: reason for path, reason in index.skipped().items()}
    assert {c.name: c.reason in skipped.get(c.name, "") for c in cases if not c.ok} == {
        c.name: True for c in cases if not c.ok
    }


def test_training_data_loading_keeps_the_good_and_reports_the_bad(corpus, tmp_path):
    from diverse_embed.datasets import Clip
    from diverse_embed.training.data import AudioCache, ChunkDataset

    folder, cases = corpus
    clips = [Clip(folder / c.name, [0], "train") for c in cases]
    usable, failures = AudioCache(tmp_path / "cache").prepare(clips, num_workers=2, progress=False)
    assert sorted(c.path.name for c in usable) == sorted(c.name for c in cases if c.ok)
    reasons = {path.split("/")[-1]: reason for path, reason in failures}
    assert all(c.reason in reasons[c.name] for c in cases if not c.ok)
    dataset = ChunkDataset(usable, AudioCache(tmp_path / "cache"), 1, DiverseEmbedConfig())
    chunks = torch.stack([dataset[i][0] for i in range(len(dataset))])
    assert torch.isfinite(chunks).all() and chunks.abs().max() <= 1.0


# ----- properties on random arrays -----------------------------------------------------------

finite = st.floats(-1.0, 1.0, width=32)
anything = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf, 3.0, -7.5]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(audio=arrays(np.float32, st.integers(1, 24000), elements=anything), rate=st.sampled_from([8000, 16000, 44100]))
def test_embed_gives_a_finite_vector_or_the_documented_error(model, audio, rate):
    try:
        out = model.embed(audio, sample_rate=rate)
    except AudioLoadError as err:
        assert "NaN or infinite" in str(err) or "outside" in str(err) or "samples" in str(err), str(err)
        assert not np.isfinite(audio).all() or np.abs(audio).max() > 1.0 or len(audio) == 0
        return
    assert out.embedding.shape == (256,) and np.isfinite(out.embedding).all()
    assert np.isfinite(out.logits).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=arrays(np.float32, (2, 16000), elements=finite), gain=st.sampled_from([0.0, 1e-9, 1e-3, 1.0]))
def test_front_ends_never_produce_nan(model, batch, gain):
    chunks = torch.from_numpy(batch) * gain
    with torch.no_grad():
        for name, branch in model.branches.items():
            frames = branch.front_end(chunks)
            assert torch.isfinite(frames).all(), name


@settings(max_examples=40, deadline=None)
@given(audio=arrays(np.float32, st.integers(0, 5000), elements=anything))
def test_prepare_waveform_returns_finite_audio_or_raises(audio):
    try:
        out = prepare_waveform(audio, 16000, 16000, source="array")
    except AudioLoadError as err:
        assert str(err).startswith("array:")
        return
    assert torch.isfinite(torch.as_tensor(out)).all() and len(out) == len(audio) > 0


TWO_HOURS = """
import json, sys
from pathlib import Path
from diverse_embed import DEFAULT_MODEL, DiverseEmbedder

def peak_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024

model = DiverseEmbedder.from_pretrained(DEFAULT_MODEL)
out = model.embed_file(sys.argv[1])
print(json.dumps({"chunks": len(out.chunk_times), "duration": out.duration, "peak_mib": peak_mib()}))
"""


@pytest.mark.integration
def test_a_two_hour_file_embeds_in_under_one_gib(tmp_path):
    """Streamed in blocks: the whole process (torch, the model, the two hours) stays under 1 GiB."""
    import json

    from badaudio import write_long_file

    path = write_long_file(tmp_path / "two hours.wav", hours=2)
    done = subprocess.run([sys.executable, "-c", TWO_HOURS, str(path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["chunks"] == 7200 and result["duration"] == pytest.approx(7200.0)
    assert result["peak_mib"] < 1024, result
