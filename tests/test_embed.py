"""Embedding clips and files: shapes, batching, determinism, streaming, decoding workers."""

import numpy as np
import pytest
import torch

from conftest import noise, sine, write_wav
from diverse_embed import AudioLoadError, DiverseEmbedConfig, DiverseEmbedder


@pytest.mark.parametrize("seconds, n_chunks", [(0.3, 1), (1.0, 1), (3.7, 4), (60.0, 60)])
def test_output_shapes(model, seconds, n_chunks):
    out = model.embed(noise(seconds), sample_rate=16000)
    assert out.embedding.shape == (256,) and out.embedding.dtype == np.float32
    assert np.isclose(np.linalg.norm(out.embedding), 1.0, atol=1e-5)
    assert set(out.branch_embeddings) == {"pitch", "timbre", "waveform", "neuralogram"}
    for vector in out.branch_embeddings.values():
        assert vector.shape == (64,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert out.chunk_embeddings.shape == (n_chunks, 256)
    np.testing.assert_allclose(out.chunk_times, np.arange(n_chunks))
    np.testing.assert_allclose(
        out.chunk_ends, np.minimum(np.arange(n_chunks) + 1.0, seconds)
    )  # the last ends with the clip
    assert out.logits.shape == (200,)
    assert np.isfinite(out.chunk_embeddings).all() and np.isfinite(out.logits).all()


def test_clip_embedding_is_the_normalised_mean_of_its_chunks(model):
    out = model.embed(noise(2.5), sample_rate=16000)
    mean = out.chunk_embeddings.mean(axis=0)
    np.testing.assert_allclose(out.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    timbre = mean[64:128]
    np.testing.assert_allclose(out.branch_embeddings["timbre"], timbre / np.linalg.norm(timbre), atol=1e-6)


def test_batch_gives_what_each_clip_gives_alone(model):
    clips = [noise(0.3), sine(440, 3.7), noise(1.0), sine(1000, 2.2, amplitude=0.05)]
    alone = [model.embed(clip, sample_rate=16000) for clip in clips]
    for batch_size in (32, 3):
        together = model.embed_batch(clips, sample_rate=16000, batch_size=batch_size)
        for a, b in zip(alone, together):
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
            np.testing.assert_allclose(a.chunk_embeddings, b.chunk_embeddings, atol=1e-5)
            np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


def test_same_input_same_bits_even_from_training_mode():
    torch.manual_seed(1)
    fresh = DiverseEmbedder()  # left in training mode: embed must still be deterministic
    clip = noise(2.0)
    first = fresh.embed(clip, sample_rate=16000)
    second = fresh.embed(clip, sample_rate=16000)
    assert np.array_equal(first.chunk_embeddings, second.chunk_embeddings)
    assert np.array_equal(first.logits, second.logits)
    assert fresh.training, "embed must restore the mode it found"


def test_other_sample_rates_are_resampled(model):
    out = model.embed(sine(440, 2.0, rate=44100), sample_rate=44100)
    assert out.chunk_embeddings.shape == (2, 256)
    with pytest.raises(AudioLoadError, match="sample_rate is required"):
        model.embed(sine(440, 1.0))


@pytest.fixture
def audio_folder(tmp_path):
    write_wav(tmp_path / "tone.wav", sine(440, 2.5))
    write_wav(tmp_path / "short.flac", sine(880, 0.4))
    write_wav(tmp_path / "cd rate.wav", sine(300, 1.2, rate=44100), rate=44100)
    return tmp_path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_embed_files_matches_embed(model, audio_folder, num_workers):
    from diverse_embed import load_audio

    paths = sorted(audio_folder.iterdir())
    matrix = model.embed_files(paths, batch_size=2, num_workers=num_workers, progress=False)
    assert matrix.shape == (3, 256) and matrix.dtype == np.float32
    for row, path in zip(matrix, paths):
        np.testing.assert_allclose(row, model.embed(load_audio(path), sample_rate=16000).embedding, atol=1e-5)


def test_a_bad_file_is_named_and_the_rest_still_embed(model, audio_folder):
    bad = audio_folder / "broken.wav"
    bad.write_text("not audio")
    paths = sorted(audio_folder.iterdir())
    with pytest.raises(AudioLoadError, match="broken.wav"):
        model.embed_files(paths, progress=False)
    results = list(model.iter_embed_files(paths, num_workers=2, progress=False))
    assert [p for p, _ in results] == paths  # order kept
    assert [isinstance(r, AudioLoadError) for _, r in results] == [p == bad for p in paths]


@pytest.mark.parametrize(
    "seconds, rate, hop", [(130.05, 16000, 1.0), (7.3, 44100, 1.0), (0.3, 16000, 1.0), (5.2, 22050, 0.5)]
)
def test_embed_file_streams_to_the_same_result(tmp_path, seconds, rate, hop, monkeypatch):
    import diverse_embed.embed as embed_module
    from diverse_embed import load_audio

    torch.manual_seed(0)
    model = DiverseEmbedder(DiverseEmbedConfig(hop_seconds=hop)).eval()
    path = write_wav(tmp_path / "long.wav", noise(seconds * rate / 16000), rate=rate, subtype="FLOAT")
    # Small blocks, so that even a short file crosses several block boundaries.
    real_stream = embed_module.stream_audio
    monkeypatch.setattr(embed_module, "stream_audio", lambda p, sr: real_stream(p, sr, block_seconds=2.0))
    streamed = model.embed_file(path, batch_size=7)
    whole = model.embed(load_audio(path), sample_rate=16000)
    np.testing.assert_allclose(streamed.chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    np.testing.assert_allclose(streamed.chunk_times, whole.chunk_times)
    np.testing.assert_allclose(streamed.chunk_ends, whole.chunk_ends)
    np.testing.assert_allclose(streamed.embedding, whole.embedding, atol=1e-5)


def test_long_files_in_a_collection_are_streamed(model, audio_folder):
    paths = sorted(audio_folder.iterdir())
    everything_in_memory = model.embed_files(paths, num_workers=0, progress=False)
    rows = [
        o.embedding for _, o in model.iter_embed_files(paths, num_workers=2, progress=False, max_seconds_in_memory=0.5)
    ]
    np.testing.assert_allclose(np.stack(rows), everything_in_memory, atol=1e-5)


def test_output_knows_its_duration(model):
    assert model.embed(noise(3.7), sample_rate=16000).duration == pytest.approx(3.7)
    assert model.embed(sine(440, 1.0, rate=8000), sample_rate=8000).duration == pytest.approx(1.0)
