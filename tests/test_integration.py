"""On real recordings: a few ESC-50 clips from ../shared/data/esc50 (run with --integration)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from diverse_embed import load_audio

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clips(esc50):
    with open(esc50 / "meta" / "esc50.csv") as f:
        rows = list(csv.DictReader(f))
    wanted = ["dog", "dog", "rain", "church_bells", "crying_baby", "chainsaw"]
    picked = []
    for category in wanted:
        row = next(r for r in rows if r["category"] == category and esc50 / "audio" / r["filename"] not in picked)
        picked.append(esc50 / "audio" / row["filename"])
    return picked


def test_esc50_clips_load_as_5_second_mono(clips):
    for path in clips:
        wave = load_audio(path)
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert abs(len(wave) - 80000) <= 1 and np.abs(wave).max() <= 1.0


def test_esc50_clips_embed_consistently(model, clips):
    matrix = model.embed_files(clips, batch_size=32, num_workers=2, progress=False)
    assert matrix.shape == (len(clips), 256) and np.isfinite(matrix).all()
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    for row, path in zip(matrix, clips):
        out = model.embed(load_audio(path), sample_rate=16000)
        np.testing.assert_allclose(row, out.embedding, atol=1e-5)
        np.testing.assert_allclose(out.chunk_times, [0, 1, 2, 3, 4])  # the 80001st sample makes no 6th chunk
    # Different recordings give different vectors, even from random weights.
    similarity = matrix @ matrix.T
    assert (similarity[~np.eye(len(clips), dtype=bool)] < 0.99999).all()


def test_esc50_at_other_rates_and_as_stereo(model, clips, tmp_path):
    import soundfile as sf

    wave = load_audio(clips[0])
    sf.write(tmp_path / "stereo.wav", np.stack([wave, wave], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "stereo.wav"), wave, atol=1e-6)
    resampled = load_audio(clips[0], sample_rate=44100)
    assert abs(len(resampled) - 220500) <= 3
    out = model.embed(resampled, sample_rate=44100)
    direct = model.embed(wave, sample_rate=16000)
    # Up- and back down-sampling is not lossless, but the clip is still the same clip.
    assert float(out.embedding @ direct.embedding) > 0.99


def test_duplicates_finds_takes_of_one_recording(esc50, tmp_path):
    """ESC-50 cuts several takes (A, B, C...) from one source recording: real near-duplicates.
    On fold 1 (400 clips) most groups the ESC-50 model finds are such takes (all 2,000 clips:
    benchmarks/results/duplicates.md)."""
    import itertools

    from diverse_embed import AudioIndex, resolve_model

    files = sorted((esc50 / "audio").glob("1-*"))
    model, name = resolve_model("diverse-embed-esc50")
    index = AudioIndex.create(tmp_path / "idx", model, name)
    index.add(files, model, progress=False)
    groups = index.duplicates(threshold=0.9, neighbours=1)
    pairs = [(a, b) for group in groups for (a, _), (b, _) in itertools.combinations(group, 2)]
    right = sum(Path(a).name.split("-")[1] == Path(b).name.split("-")[1] for a, b in pairs)
    assert len(pairs) >= 20 and right / len(pairs) >= 0.4, (right, len(pairs))
