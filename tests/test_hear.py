"""The HEAR 2021 API, checked the way hear-validator checks a module (against the public spec at
hearbenchmark.com/hear-api.html), with the bundled model."""

import importlib

import numpy as np
import pytest
import torch

from diverse_embed import hear

LENGTHS_S = (1.07, 1.98, 2.74, 4.0)


@pytest.fixture(scope="module")
def model():
    return hear.load_model()


def batch(seconds: float, n: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    samples = int(round(seconds * 16000))
    t = np.arange(samples) / 16000
    clips = [0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t) + 0.05 * rng.standard_normal(samples) for i in range(n)]
    return torch.tensor(np.stack(clips), dtype=torch.float32)


def test_module_is_importable_by_name_and_has_the_api():
    module = importlib.import_module("diverse_embed.hear")
    for name in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings"):
        assert callable(getattr(module, name))


def test_model_attributes(model):
    assert isinstance(model, torch.nn.Module)
    for name in ("sample_rate", "scene_embedding_size", "timestamp_embedding_size"):
        assert isinstance(getattr(model, name), int), name
    assert model.sample_rate == 16000
    assert (model.scene_embedding_size, model.timestamp_embedding_size) == (512, 256)


def test_load_model_from_folder_and_safetensors_file(tmp_path):
    from diverse_embed import DEFAULT_MODEL, bundled_models

    folder = bundled_models()[DEFAULT_MODEL]
    for source in (str(folder), str(folder / "model.safetensors")):
        loaded = hear.load_model(source)
        assert loaded.embedder.fingerprint() == hear.load_model().embedder.fingerprint()


@pytest.mark.parametrize("seconds", LENGTHS_S)
def test_scene_embeddings(model, seconds):
    audio = batch(seconds, n=3)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (3, model.scene_embedding_size)
    assert scene.device == audio.device and torch.isfinite(scene).all()


@pytest.mark.parametrize("seconds", LENGTHS_S)
def test_timestamp_embeddings(model, seconds):
    audio = batch(seconds, n=2)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n_times = timestamps.shape[1]
    assert embeddings.dtype == torch.float32 and timestamps.dtype == torch.float32
    assert embeddings.shape == (2, n_times, model.timestamp_embedding_size) and timestamps.shape == (2, n_times)
    assert torch.isfinite(embeddings).all()
    steps = torch.diff(timestamps, dim=1)
    assert (steps - steps[:, :1]).abs().max() < 1.0  # evenly spaced within 1 ms
    assert steps[0, 0] <= 50.0  # hop at most 50 ms
    assert torch.equal(timestamps[0], timestamps[1])
    duration_ms = audio.shape[1] / 16000 * 1000
    assert timestamps[0, -1] <= duration_ms  # never past the end
    assert duration_ms - timestamps[0, -1] < 2 * steps[0, 0]  # within two hops of it


def test_timestamps_do_not_drift_on_long_clips(model):
    times = hear.timestamps_ms(16000 * 3600, model)  # an hour
    assert times[-1].item() == 3600 * 1000 and torch.equal(times[1:] - times[:-1], torch.full((len(times) - 1,), 50.0))


def test_a_batch_gives_what_its_items_give(model):
    audio = batch(1.98, n=3, seed=1)
    scene = hear.get_scene_embeddings(audio, model)
    frames, _ = hear.get_timestamp_embeddings(audio, model)
    for i in range(3):
        torch.testing.assert_close(
            hear.get_scene_embeddings(audio[i : i + 1], model)[0], scene[i], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            hear.get_timestamp_embeddings(audio[i : i + 1], model)[0][0], frames[i], atol=1e-5, rtol=1e-5
        )


def test_scene_mean_half_is_the_library_embedding(model):
    audio = batch(2.74, n=1)
    scene = hear.get_scene_embeddings(audio, model)[0]
    output = model.embedder.embed(audio[0].numpy(), sample_rate=16000)
    np.testing.assert_allclose(scene[:256].numpy(), output.chunk_embeddings.mean(axis=0), atol=1e-5)


def test_short_and_bad_inputs(model):
    half_second = batch(0.5, n=1)
    assert hear.get_scene_embeddings(half_second, model).shape == (1, 512)
    assert hear.get_timestamp_embeddings(half_second, model)[0].shape == (1, 11, 256)
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(16000), model)
    with pytest.raises(ValueError, match="no samples"):
        hear.get_timestamp_embeddings(torch.zeros(2, 0), model)
    with pytest.raises(ValueError, match=r"torch.Tensor .* got a numpy.ndarray of shape \(2, 32000\): convert"):
        hear.get_scene_embeddings(np.zeros((2, 32000), np.float32), model)  # the shape is right, the type is not


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_outputs_stay_on_the_device(model):
    gpu = hear.load_model().to("cuda")
    audio = batch(1.07).to("cuda")
    assert hear.get_scene_embeddings(audio, gpu).device.type == "cuda"
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, gpu)
    assert embeddings.device.type == "cuda" and timestamps.device.type == "cuda"
