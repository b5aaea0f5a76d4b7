"""The neuralogram's context (config neuralogram.context_seconds): the MobileNet hears audio around
each chunk, the chunk grid and the other branches stay as they are, and every path that cuts
chunks (in memory, streamed, batched, training, HEAR) gives each chunk the same window."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY, noise, tiny_config, write_wav
from diverse_embed import DiverseEmbedConfig, DiverseEmbedder, load_audio
from diverse_embed.audio import chunk
from diverse_embed.config import NeuralogramConfig
from diverse_embed.datasets import Clip
from diverse_embed.training.data import AudioCache, ChunkDataset


def with_context(seconds: float, **changes) -> DiverseEmbedConfig:
    return tiny_config(neuralogram=NeuralogramConfig(mobilenet_width=0.25, context_seconds=seconds), **changes)


def bundled_with(seconds: float, **changes) -> DiverseEmbedder:
    """The bundled model's weights hearing `seconds` of context (a random MobileNet's output is ~1e-11:
    it would hear nothing)."""
    bundled = DiverseEmbedder.from_pretrained("diverse-embed-multi-v2")
    neuralogram = dataclasses.replace(bundled.config.neuralogram, context_seconds=seconds)
    model = DiverseEmbedder(dataclasses.replace(bundled.config, neuralogram=neuralogram, **changes))
    model.load_state_dict(bundled.state_dict())
    return model.eval()


@pytest.fixture(scope="module")
def context_model():
    return bundled_with(0.5)


def test_the_default_leaves_the_field_out_so_older_files_and_fingerprints_stay():
    assert "context_seconds" not in DiverseEmbedConfig().to_dict()["neuralogram"]
    config = with_context(0.5)
    assert config.to_dict()["neuralogram"]["context_seconds"] == 0.5
    assert DiverseEmbedConfig.from_dict(config.to_dict()) == config
    assert (config.context_samples, config.window_samples) == (8000, 32000)
    assert with_context(0.5, branches=["pitch", "timbre"]).window_samples == 16000  # no neuralogram, no context
    with pytest.raises(ValueError, match="neuralogram.context_seconds must be between 0.0 and 30.0"):
        with_context(31.0)


def test_windows_are_centred_on_the_chunks_with_zeros_past_the_clip():
    audio = noise(3.4)
    windows, starts = chunk(audio, with_context(0.5))  # (n_chunks, 32000)
    plain, plain_starts = chunk(audio, tiny_config())  # (n_chunks, 16000)
    assert windows.shape == (4, 32000) and np.array_equal(starts, plain_starts)
    assert torch.equal(windows[:, 8000:24000], plain)  # the chunk in the middle of its window
    assert torch.equal(windows[0, :8000], torch.zeros(8000))  # before the clip
    assert torch.equal(windows[1, :8000], torch.from_numpy(audio[8000:16000]))  # the chunk before's second half
    last = windows[-1, 8000 + len(audio) - 48000 :]  # past the clip's end (its last chunk starts at 48000)
    assert len(last) == 17600 and not last.any()


def test_only_the_neuralogram_hears_the_context(context_model):
    plain = bundled_with(0.0)  # the same weights: none depends on the context
    audio = noise(4.0)
    with_context, without = context_model.embed(audio, 16000), plain.embed(audio, 16000)
    for name in ("pitch", "timbre", "waveform"):
        np.testing.assert_array_equal(with_context.branch_embeddings[name], without.branch_embeddings[name])
    assert with_context.branch_embeddings["neuralogram"] @ without.branch_embeddings["neuralogram"] < 0.99
    with pytest.raises(ValueError, match=r"\(batch, 32000\) with 8000 samples of context each side"):
        context_model(torch.zeros(2, 16000))


@pytest.mark.parametrize("seconds, hop", [(7.3, 1.0), (0.3, 1.0), (5.2, 0.5)])
def test_streamed_batched_and_alone_give_the_same_chunks(tmp_path, seconds, hop, monkeypatch):
    import diverse_embed.embed as embed_module

    model = bundled_with(1.0, hop_seconds=hop)
    path = write_wav(tmp_path / "clip.wav", noise(seconds), subtype="FLOAT")
    real_stream = embed_module.stream_audio  # small blocks: every window crosses block boundaries
    monkeypatch.setattr(embed_module, "stream_audio", lambda p, sr: real_stream(p, sr, block_seconds=0.7))
    streamed = model.embed_file(path, batch_size=3)
    whole = model.embed(load_audio(path), sample_rate=16000)
    np.testing.assert_allclose(streamed.chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    np.testing.assert_allclose(streamed.chunk_times, whole.chunk_times)
    other = noise(2.5)
    together = model.embed_batch([load_audio(path), other], 16000)
    np.testing.assert_allclose(together[0].chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    np.testing.assert_allclose(together[1].chunk_embeddings, model.embed(other, 16000).chunk_embeddings, atol=1e-5)


def test_training_chunks_carry_the_same_windows(tmp_path):
    audio = noise(3.5)
    path = write_wav(tmp_path / "clip.wav", audio, subtype="FLOAT")
    cache = AudioCache(tmp_path / "cache")
    clips, _ = cache.prepare([Clip(path, [0], "train")], num_workers=0, progress=False)
    config = with_context(0.5)
    items = ChunkDataset(clips, cache, 1, config)
    expected, _ = chunk(cache.load(path).astype(np.float32) / 32767.0, config)  # what embedding cuts
    assert len(items) == len(expected) == 4
    for k in range(4):
        np.testing.assert_allclose(items[k][0].numpy(), expected[k].numpy(), atol=1e-7)


def test_hear_timestamps_with_context(context_model):
    from diverse_embed.hear import HearModel, get_timestamp_embeddings

    hear = HearModel(context_model)
    embeddings, times = get_timestamp_embeddings(torch.from_numpy(noise(2.0)).unsqueeze(0), hear)
    assert embeddings.shape == (1, len(times[0]), context_model.embedding_dim) and torch.isfinite(embeddings).all()
    # The timestamp at 1.5 s is the chunk [1, 2) s with 0.5 s of context each side: [0.5, 2.5) s.
    audio = torch.from_numpy(noise(3.0))
    embeddings, times = get_timestamp_embeddings(audio.unsqueeze(0), hear)
    k = int(np.flatnonzero(times[0].numpy() == 1500.0)[0])
    window = audio[8000:40000].unsqueeze(0)
    with torch.inference_mode():
        alone = context_model(window).embeddings[0]
    torch.testing.assert_close(embeddings[0, k], alone, atol=1e-5, rtol=0)


def test_train_sets_the_context_of_a_model_it_starts_from(fsd50k, tmp_path):
    from test_train import train_main

    torch.manual_seed(1)
    base = DiverseEmbedder(tiny_config(branches=["timbre", "neuralogram"]))
    base.save_pretrained(tmp_path / "base")
    common = ["--dataset", "fsd50k", "--data-root", str(fsd50k), "--cache-dir", str(tmp_path / "cache"), *TINY]
    common += ["--init-from", str(tmp_path / "base")]
    train_main([*common, "--output", str(tmp_path / "run"), "--retrain", "neuralogram", "--context-seconds", "0.5"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["neuralogram"]["context_seconds"] == 0.5
    trained = DiverseEmbedder.from_pretrained(tmp_path / "run")
    assert trained.config.window_samples == 32000 and np.isfinite(trained.embed(noise(2.0), 16000).embedding).all()
    assert train_main([*common, "--output", str(tmp_path / "bad"), "--context-seconds", "40"]) == 2


def test_a_saved_context_model_loads_with_its_context(tmp_path, context_model):
    context_model.save_pretrained(tmp_path / "m")
    loaded = DiverseEmbedder.from_pretrained(tmp_path / "m")
    assert loaded.config == context_model.config and loaded.fingerprint() == context_model.fingerprint()
    changed = dataclasses.replace(context_model.config.neuralogram, context_seconds=1.0)
    other = DiverseEmbedder(dataclasses.replace(context_model.config, neuralogram=changed))
    other.load_state_dict(context_model.state_dict())
    assert other.fingerprint() != context_model.fingerprint()  # the same weights hear other audio
