"""The neuralogram's blocks (config neuralogram.block_chunks): when embedding, its MobileNet runs
once over a block of consecutive chunks and each chunk reads its tokens where its own window's
would be; every path that embeds (in memory, streamed, batched, HEAR) cuts the same blocks."""

import dataclasses

import numpy as np
import pytest
import torch

from conftest import noise, tiny_config, write_wav
from diverse_embed import DiverseEmbedConfig, DiverseEmbedder, load_audio
from diverse_embed.audio import chunk
from diverse_embed.config import NeuralogramConfig


def bundled_with(context: float, blocks: int, **changes) -> DiverseEmbedder:
    """The bundled default's weights with the neuralogram hearing `context` seconds each side, in
    blocks of `blocks` chunks (no weight depends on either)."""
    bundled = DiverseEmbedder.from_pretrained("diverse-embed-multi-v2")
    neuralogram = dataclasses.replace(bundled.config.neuralogram, context_seconds=context, block_chunks=blocks)
    model = DiverseEmbedder(dataclasses.replace(bundled.config, neuralogram=neuralogram, **changes))
    model.load_state_dict(bundled.state_dict())
    return model.eval()


@pytest.fixture(scope="module")
def block_model():
    return bundled_with(0.5, 3)


def test_the_default_leaves_the_field_out_and_bad_values_are_refused():
    assert "block_chunks" not in DiverseEmbedConfig().to_dict()["neuralogram"]
    config = tiny_config(neuralogram=NeuralogramConfig(mobilenet_width=0.25, context_seconds=0.5, block_chunks=4))
    assert config.to_dict()["neuralogram"]["block_chunks"] == 4 and config.block_chunks == 4
    assert DiverseEmbedConfig.from_dict(config.to_dict()) == config
    assert dataclasses.replace(config, branches=["pitch"]).block_chunks == 1  # no neuralogram, no blocks
    with pytest.raises(ValueError, match="neuralogram.block_chunks must be between 1 and 3600"):
        tiny_config(neuralogram=NeuralogramConfig(block_chunks=0))
    with pytest.raises(ValueError, match="hop_seconds \\(2.5\\) cannot exceed a chunk with its context"):
        dataclasses.replace(config, hop_seconds=2.5)


def test_a_block_of_one_chunk_gives_its_window_tokens(block_model):
    windows, _ = chunk(noise(3.0), block_model.config)  # (3, 32000)
    neuralogram = block_model.branches["neuralogram"]
    with torch.inference_mode():
        own = neuralogram.front_end(windows)[:, 1:4]  # the central 3 of the window's 6 tokens
        alone = torch.cat([block_model.block_tokens(w, 1, 16000) for w in windows])
        joined = torch.cat([windows[0, :16000], windows[1, :16000], windows[2]])
        block = block_model.block_tokens(joined, 3, 16000)
        made = neuralogram.front_end(joined[None])[0]  # the block's own tokens, 400 ms apart
    torch.testing.assert_close(alone, own, atol=1e-5, rtol=0)
    # Chunks 0 and 2 (5 token steps on) sit on the block's grid; chunk 1 falls halfway and takes the
    # earlier tokens, as the network made them (never a blend of two).
    torch.testing.assert_close(block, torch.stack([made[1:4], made[3:6], made[6:9]]), atol=0, rtol=0)
    assert not torch.allclose(block, own, atol=1e-3)


def test_blocks_change_only_the_neuralogram_and_only_beyond_one_chunk(block_model):
    windowed = bundled_with(0.5, 1)
    audio = noise(4.0)
    blocks, windows = block_model.embed(audio, 16000), windowed.embed(audio, 16000)
    for name in ("pitch", "timbre", "waveform"):
        np.testing.assert_array_equal(blocks.branch_embeddings[name], windows.branch_embeddings[name])
    assert blocks.branch_embeddings["neuralogram"] @ windows.branch_embeddings["neuralogram"] < 0.9999
    short = noise(0.8)  # one chunk: a block of one is its window
    np.testing.assert_allclose(
        block_model.embed(short, 16000).embedding, windowed.embed(short, 16000).embedding, atol=1e-5
    )
    assert block_model.fingerprint() != windowed.fingerprint()


@pytest.mark.parametrize("seconds, hop", [(7.3, 1.0), (2.2, 1.0), (5.2, 0.5)])
def test_streamed_batched_and_alone_give_the_same_chunks(tmp_path, seconds, hop, monkeypatch):
    import diverse_embed.embed as embed_module

    model = bundled_with(0.5, 3, hop_seconds=hop)
    path = write_wav(tmp_path / "clip.wav", noise(seconds), subtype="FLOAT")
    real_stream = embed_module.stream_audio  # small blocks: windows and blocks cross the decoder's
    monkeypatch.setattr(embed_module, "stream_audio", lambda p, sr: real_stream(p, sr, block_seconds=0.7))
    streamed = model.embed_file(path, batch_size=2)  # a batch waits for its block to be whole
    whole = model.embed(load_audio(path), sample_rate=16000)
    np.testing.assert_allclose(streamed.chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    other = noise(2.5)
    together = model.embed_batch([load_audio(path), other], 16000, batch_size=4)
    np.testing.assert_allclose(together[0].chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    np.testing.assert_allclose(together[1].chunk_embeddings, model.embed(other, 16000).chunk_embeddings, atol=1e-5)


def test_hear_reads_timestamps_from_blocks(block_model):
    from diverse_embed.hear import HearModel, get_scene_embeddings, get_timestamp_embeddings

    hear = HearModel(block_model)
    audio = torch.from_numpy(noise(2.0)).unsqueeze(0)
    embeddings, times = get_timestamp_embeddings(audio, hear)
    assert embeddings.shape == (1, len(times[0]), block_model.embedding_dim) and torch.isfinite(embeddings).all()
    windowed, _ = get_timestamp_embeddings(audio, HearModel(bundled_with(0.5, 1)))
    assert not torch.allclose(embeddings, windowed, atol=1e-3)
    scene = get_scene_embeddings(audio, hear)[0, :256].numpy()  # the mean chunk vector, as embed's
    np.testing.assert_allclose(scene, block_model.embed(audio[0].numpy(), 16000).chunk_embeddings.mean(0), atol=1e-5)
