import json

import numpy as np
import pytest
import safetensors.torch
import torch

from conftest import sine, write_wav
from diverse_embed import AudioLoadError, CheckpointError, DiverseEmbedConfig, DiverseEmbedder
from diverse_embed.model import explicit_attention

RNG = np.random.default_rng(0)


def noise(seconds: float) -> np.ndarray:
    return (RNG.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


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


@pytest.mark.parametrize("frames", [3, 41])
def test_explicit_attention_is_scaled_dot_product_attention(frames):
    # The CPU path writes attention out (faster at these sizes); GPUs use PyTorch's SDPA.
    q, k, v = torch.randn(3, 5, 12, frames, 8).unbind(0)  # (batch, heads, frames, head_dim)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(explicit_attention(q, k, v, dropout=0.0), expected, rtol=1e-5, atol=1e-6)


def test_other_sample_rates_are_resampled(model):
    out = model.embed(sine(440, 2.0, rate=44100), sample_rate=44100)
    assert out.chunk_embeddings.shape == (2, 256)
    with pytest.raises(AudioLoadError, match="sample_rate is required"):
        model.embed(sine(440, 1.0))


def test_forward_checks_its_input(model):
    with pytest.raises(ValueError, match=r"expected chunks of shape \(batch, 16000\)"):
        model(torch.zeros(2, 8000))


def test_parameter_count_matches_the_method(model):
    counts = model.num_parameters()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert 3.5e6 < counts["total"] < 5e6  # the method reports about 4 M
    # The three handcrafted branches are small transformers; the neuralogram carries the MobileNet.
    assert all(150_000 < counts[name] < 400_000 for name in ["pitch", "timbre", "waveform"])
    assert counts["neuralogram"] > 3e6


@pytest.mark.parametrize("branches, dim", [(["timbre"], 64), (["pitch", "waveform", "neuralogram"], 192)])
def test_branch_selection(branches, dim):
    torch.manual_seed(0)
    small = DiverseEmbedder(DiverseEmbedConfig(branches=branches, num_labels=5)).eval()
    out = small.embed(noise(1.5), sample_rate=16000)
    assert out.embedding.shape == (dim,) and list(out.branch_embeddings) == branches
    assert out.logits.shape == (5,)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="branches"):
        DiverseEmbedConfig(branches=["pitch", "loudness"])
    with pytest.raises(ValueError, match="id2label"):
        DiverseEmbedConfig(num_labels=3, id2label={0: "a", 1: "b"})


# ----- save and load -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    config = DiverseEmbedConfig(num_labels=3, id2label={0: "dog", 1: "rain", 2: "siren"})
    original = DiverseEmbedder(config).eval()
    folder = tmp_path_factory.mktemp("checkpoint")
    original.save_pretrained(folder)
    return original, folder


def test_round_trip_gives_identical_outputs(saved):
    original, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = DiverseEmbedder.from_pretrained(folder)
    assert not loaded.training
    assert loaded.config == original.config
    assert loaded.config.id2label == {0: "dog", 1: "rain", 2: "siren"}  # integer keys again
    clip = noise(2.3)
    a, b = original.embed(clip, sample_rate=16000), loaded.embed(clip, sample_rate=16000)
    assert np.array_equal(a.chunk_embeddings, b.chunk_embeddings) and np.array_equal(a.logits, b.logits)


def test_checkpoint_holds_learned_tensors_only(saved):
    _, folder = saved
    keys = safetensors.torch.load_file(str(folder / "model.safetensors")).keys()
    assert not any("spectrogram" in k or "mfcc" in k or ".mel." in k for k in keys)  # recomputed from config
    assert any(k.endswith("running_mean") for k in keys)  # MobileNet batch-norm statistics are kept


def copy_checkpoint(folder, target, edit_tensors=None, edit_config=None):
    target.mkdir()
    tensors = safetensors.torch.load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    safetensors.torch.save_file(tensors, str(target / "model.safetensors"))
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_renamed_key_fails_and_names_it(saved, tmp_path):
    def rename(tensors):
        tensors["head.weight_renamed"] = tensors.pop("head.weight")

    folder = copy_checkpoint(saved[1], tmp_path / "tampered", edit_tensors=rename)
    with pytest.raises(CheckpointError, match=r"missing keys \[head.weight\].*unexpected keys \[head.weight_renamed\]"):
        DiverseEmbedder.from_pretrained(folder)
    with pytest.raises(CheckpointError):  # asking for a lenient load changes nothing
        DiverseEmbedder.from_pretrained(folder, strict=False)


def test_config_and_tensors_that_disagree_fail(saved, tmp_path):
    def more_labels(config):
        config["num_labels"], config["id2label"] = 4, None

    folder = copy_checkpoint(saved[1], tmp_path / "shape", edit_config=more_labels)
    with pytest.raises(CheckpointError, match=r"shape mismatch \[head.bias: file \(3,\) vs model \(4,\)"):
        DiverseEmbedder.from_pretrained(folder)


def test_unknown_config_field_fails(saved, tmp_path):
    folder = copy_checkpoint(saved[1], tmp_path / "future", edit_config=lambda c: c.update(rotary=True))
    with pytest.raises(CheckpointError, match="rotary"):
        DiverseEmbedder.from_pretrained(folder)


def test_float16_weights_load_as_float32(saved, tmp_path):
    def halve(tensors):
        for key, value in tensors.items():
            if value.is_floating_point():
                tensors[key] = value.half()

    folder = copy_checkpoint(saved[1], tmp_path / "half", edit_tensors=halve)
    loaded = DiverseEmbedder.from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    clip = noise(2.0)
    a, b = saved[0].embed(clip, sample_rate=16000), loaded.embed(clip, sample_rate=16000)
    assert float(a.embedding @ b.embedding) > 0.999


def test_missing_pieces_fail_clearly(saved, tmp_path):
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text((saved[1] / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        DiverseEmbedder.from_pretrained(tmp_path / "no_weights")
    (tmp_path / "no_config").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        DiverseEmbedder.from_pretrained(tmp_path / "no_config")
    with pytest.raises(CheckpointError, match="not a model folder|no such model folder"):
        DiverseEmbedder.from_pretrained(tmp_path / "does-not-exist", local_files_only=True)
    with pytest.raises(CheckpointError, match="not a file"):
        DiverseEmbedder.from_pretrained(saved[1] / "model.safetensors")
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        DiverseEmbedder.from_pretrained(tmp_path / "bad_json")


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(CheckpointError, match="org/not-cached"):
        DiverseEmbedder.from_pretrained("org/not-cached", local_files_only=True)


# ----- files ---------------------------------------------------------------------------------------

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


def test_hub_id_loads_from_a_hub_cache(saved, tmp_path):
    # The layout huggingface_hub's downloads leave: what from_pretrained("org/name") reads offline.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--diverse-test"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ["config.json", "model.safetensors"]:
        (snapshot / name).write_bytes((saved[1] / name).read_bytes())
    loaded = DiverseEmbedder.from_pretrained("org/diverse-test", cache_dir=tmp_path, local_files_only=True)
    loaded_by_commit = DiverseEmbedder.from_pretrained(
        "org/diverse-test", revision=commit, cache_dir=tmp_path, local_files_only=True
    )
    clip = noise(1.0)
    reference = saved[0].embed(clip, sample_rate=16000).embedding
    assert np.array_equal(loaded.embed(clip, sample_rate=16000).embedding, reference)
    assert np.array_equal(loaded_by_commit.embed(clip, sample_rate=16000).embedding, reference)


def test_push_to_hub_uploads_a_loadable_folder(saved, tmp_path, monkeypatch):
    import shutil
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    uploaded = tmp_path / "uploaded"

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, uploaded)
        return f"uploaded {repo_id}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert saved[0].push_to_hub("org/name") == "uploaded org/name"
    loaded = DiverseEmbedder.from_pretrained(uploaded)
    assert loaded.config == saved[0].config
    assert "diverse-embed" in (uploaded / "README.md").read_text()


@pytest.mark.parametrize("seconds, rate, hop", [(130.05, 16000, 1.0), (7.3, 44100, 1.0), (0.3, 16000, 1.0), (5.2, 22050, 0.5)])
def test_embed_file_streams_to_the_same_result(tmp_path, seconds, rate, hop, monkeypatch):
    import diverse_embed.model as model_module
    from diverse_embed import load_audio

    torch.manual_seed(0)
    model = DiverseEmbedder(DiverseEmbedConfig(hop_seconds=hop)).eval()
    path = write_wav(tmp_path / "long.wav", noise(seconds * rate / 16000), rate=rate, subtype="FLOAT")
    # Small blocks, so that even a short file crosses several block boundaries.
    real_stream = model_module.stream_audio
    monkeypatch.setattr(model_module, "stream_audio", lambda p, sr: real_stream(p, sr, block_seconds=2.0))
    streamed = model.embed_file(path, batch_size=7)
    whole = model.embed(load_audio(path), sample_rate=16000)
    np.testing.assert_allclose(streamed.chunk_embeddings, whole.chunk_embeddings, atol=1e-5)
    np.testing.assert_allclose(streamed.chunk_times, whole.chunk_times)
    np.testing.assert_allclose(streamed.embedding, whole.embedding, atol=1e-5)


def test_long_files_in_a_collection_are_streamed(model, audio_folder):
    paths = sorted(audio_folder.iterdir())
    everything_in_memory = model.embed_files(paths, num_workers=0, progress=False)
    rows = [o.embedding for _, o in model.iter_embed_files(paths, num_workers=2, progress=False,
                                                          max_seconds_in_memory=0.5)]
    np.testing.assert_allclose(np.stack(rows), everything_in_memory, atol=1e-5)


def test_fingerprint_follows_weights_and_config(saved):
    original, folder = saved
    assert DiverseEmbedder.from_pretrained(folder).fingerprint() == original.fingerprint()
    torch.manual_seed(99)
    assert DiverseEmbedder(original.config).fingerprint() != original.fingerprint()


def test_output_knows_its_duration(model):
    assert model.embed(noise(3.7), sample_rate=16000).duration == pytest.approx(3.7)
    assert model.embed(sine(440, 1.0, rate=8000), sample_rate=8000).duration == pytest.approx(1.0)
