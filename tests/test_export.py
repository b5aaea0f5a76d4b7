"""The ONNX export: onnxruntime gives the package's vectors, the clip rule in docs/onnx.md is the package's,
and the command fails like loading does. Needs the export extra (onnx, onnxscript, onnxruntime),
which the test extra installs."""

import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, noise, sine, tiny_config, write_wav
from diverse_embed.audio import load_audio
from diverse_embed.checkpoint import bundled_models
from diverse_embed.cli import main
from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.export import PARITY, export_onnx, max_differences, onnx_session
from diverse_embed.model import DiverseEmbedder

pytestmark = pytest.mark.slow  # subprocesses, an exporter or a browser: seconds each

pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install '.[export]'")
pytest.importorskip("onnxscript", reason="the export extra is not installed: pip install '.[export]'")

SAMPLES = sorted(Path(str(files("diverse_embed") / "samples")).glob("*.wav"))


def tiny_model(seed: int = 0) -> DiverseEmbedder:
    torch.manual_seed(seed)
    labels = {i: f"label{i}" for i in range(7)}
    return DiverseEmbedder(tiny_config(id2label=labels, problem_type="single_label_classification")).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", "tiny")
    return model, path, onnx_session(path)


def test_onnxruntime_gives_the_packages_vectors(exported):
    model, _, session = exported
    worst = max_differences(model, session, [load_audio(p) for p in SAMPLES] + [noise(2.3), sine(220, 0.3)])
    assert set(worst) == {"embedding", "logits", "pitch", "timbre", "waveform", "neuralogram", "clip embedding"}
    assert max(worst.values()) <= PARITY, worst
    # The measure can fail: another model's file is far from this one's vectors.
    other = max_differences(tiny_model(seed=1), session, [load_audio(SAMPLES[0])])
    assert other["embedding"] > 100 * PARITY


def test_the_file_describes_itself_and_takes_any_batch(exported):
    model, path, session = exported
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["model"] == "tiny" and meta["fingerprint"] == model.fingerprint()
    assert json.loads(meta["labels"]) == [f"label{i}" for i in range(7)]
    assert (int(meta["sample_rate"]), int(meta["chunk_samples"]), int(meta["hop_samples"])) == (16000, 16000, 16000)
    assert int(meta["min_final_chunk_samples"]) == 1600 and meta["problem_type"] == "single_label_classification"
    assert DiverseEmbedConfig.from_dict(json.loads(meta["config"])) == model.config
    assert [o.name for o in session.get_outputs()] == [
        "embedding",
        "pitch",
        "timbre",
        "waveform",
        "neuralogram",
        "logits",
    ]
    assert session.get_inputs()[0].name == "chunks" and session.get_inputs()[0].shape[1] == 16000
    chunks = np.stack([noise(1.0), sine(440, 1.0), np.zeros(16000, np.float32)])  # (3, 16000)
    together = session.run(None, {"chunks": chunks})
    for i in range(3):  # a batch gives what its chunks give alone
        alone = session.run(None, {"chunks": chunks[i : i + 1]})
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a[i : i + 1], b, atol=1e-5)
    assert [len(x) for x in together] == [3] * 6 and together[0].shape == (3, model.config.embedding_dim)


def documented_clip_rule() -> str:
    blocks = re.findall(r"```python\n(.+?)```", (REPO / "docs" / "onnx.md").read_text(), re.S)
    [block] = [b for b in blocks if "def embed(audio, rate)" in b]
    return block


def documented_rule(path) -> dict:
    """docs/onnx.md's clip rule run against the file at `path`: its namespace (embed, clip, ...)."""
    namespace = {"samples": SAMPLES}
    code = documented_clip_rule().replace('"model.onnx"', repr(str(path)))
    exec(compile(code, "docs/onnx.md clip rule", "exec"), namespace)
    return namespace


def assert_the_rule_gives_the_packages_neuralogram(embed, model, cases) -> None:
    """The documented rule's neuralogram and fused vectors are the package's for each (audio, rate)."""
    for audio, rate in cases:
        ours, package = embed(audio, rate), model.embed(audio, sample_rate=rate)
        np.testing.assert_allclose(ours["neuralogram"], package.branch_embeddings["neuralogram"], atol=PARITY)
        np.testing.assert_allclose(ours["embedding"], package.embedding, atol=PARITY)


def test_the_documented_clip_rule_is_the_packages(exported, tmp_path):
    model, path, _ = exported
    namespace = documented_rule(path)
    assert namespace["clip"]["embedding"].shape == (model.config.embedding_dim,)
    long = noise(5.00006)  # a last chunk of 1 sample: dropped, by the package's rule
    cases = [
        (long, 16000),
        (noise(0.3), 16000),
        (noise(3.7), 16000),
        (sine(330, 2.0, rate=44100), 44100),
        (sine(500, 1.5, rate=8000), 8000),
        (noise(1.0), 48000),
    ]
    for audio, rate in cases:
        ours = namespace["embed"](audio, rate)
        package = model.embed(audio, sample_rate=rate)
        np.testing.assert_allclose(ours["embedding"], package.embedding, atol=PARITY)
        np.testing.assert_allclose(ours["logits"], package.logits, atol=PARITY)
        for name in model.config.branches:
            np.testing.assert_allclose(ours[name], package.branch_embeddings[name], atol=PARITY)
    # The rule as written: the documented resampling is the package's.
    from diverse_embed.audio import resample

    for rate in (44100, 8000, 48000, 22050):
        audio = noise(1.3)[: int(1.3 * rate)]
        np.testing.assert_allclose(namespace["resample"](audio, rate), resample(audio, rate, 16000), atol=1e-5)


def test_export_command_writes_a_checked_file(tmp_path, capsys):
    model = tiny_model()
    model.save_pretrained(tmp_path / "tiny")
    assert main(["export", "--model", str(tmp_path / "tiny"), "--output", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "exported" in out and "largest difference" in out and "11 packaged samples" in out
    assert onnx_session(tmp_path / "m.onnx").get_modelmeta().custom_metadata_map["fingerprint"] == model.fingerprint()


@pytest.mark.parametrize("broken", ["missing", "empty", "config only", "wrong weights"])
def test_a_bad_or_untrained_model_folder_fails_as_loading_does(tmp_path, capsys, broken):
    folder = tmp_path / "model"
    if broken != "missing":
        folder.mkdir()
    if broken in ("config only", "wrong weights"):  # what a training run holds before its first checkpoint
        (folder / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    if broken == "wrong weights":
        tiny_model().save_pretrained(tmp_path / "other")
        (folder / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
        (folder / "config.json").write_text(json.dumps(tiny_config(d_model=8, head_dim=4).to_dict()))
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--model", str(folder), "-q"]) == 2
    loading = capsys.readouterr().err
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "m.onnx"), "-q"]) == 2
    exporting = capsys.readouterr().err
    assert exporting == loading and exporting.count("\n") == 1 and exporting.startswith("error: ")
    assert not (tmp_path / "m.onnx").exists()


def test_export_refuses_other_outputs_and_names_a_missing_extra(tmp_path, capsys, monkeypatch):
    assert main(["export", "--model", "untrained-seed0", "--output", str(tmp_path / "m.npz")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a)
    )
    assert main(["export", "--model", "untrained-seed0", "--output", str(tmp_path / "m.onnx")]) == 2
    assert 'onnxscript: pip install "diverse-embed[export]"' in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_every_bundled_model_exports_within_parity(esc50, tmp_path, name):
    from diverse_embed.resolve import resolve_model

    assert main(["export", "--model", name, "--output", str(tmp_path / "m.onnx"), "-q"]) == 0  # checks the samples
    session = onnx_session(tmp_path / "m.onnx")
    model, _ = resolve_model(name)
    assert session.get_modelmeta().custom_metadata_map["fingerprint"] == model.fingerprint()
    clips = sorted((esc50 / "audio").glob("*.flac"))[::20][:100]  # 100 clips, every class
    assert len(clips) == 100
    worst = max_differences(model, session, [load_audio(p) for p in SAMPLES + clips])
    assert max(worst.values()) <= PARITY, worst


def test_a_model_with_blocks_exports_a_graph_of_one_block_and_its_documented_rule_holds(tmp_path):
    from test_blocks import bundled_with  # v2's weights with context 0.5 s and blocks of 3 chunks

    model = bundled_with(0.5, 3)
    path = export_onnx(model, tmp_path / "blocks.onnx", "blocks")
    session = onnx_session(path)
    assert session.get_modelmeta().custom_metadata_map["block_chunks"] == "3"
    assert [i.name for i in session.get_inputs()] == ["block"]
    # 8 chunks: blocks of 3, 3 and 2; one chunk; the last block a single chunk.
    worst = max_differences(model, session, [noise(7.3), noise(0.3), noise(6.9), load_audio(SAMPLES[0])])
    assert max(worst.values()) <= PARITY, worst
    namespace = documented_rule(path)
    cases = [(noise(7.3), 16000), (noise(0.3), 16000), (noise(2.0)[:57330], 44100)]
    assert_the_rule_gives_the_packages_neuralogram(namespace["embed"], model, cases)


def test_a_model_with_context_exports_and_its_documented_rule_holds(tmp_path):
    from test_context import bundled_with  # trained weights: a random MobileNet hears almost nothing

    model = bundled_with(0.5)
    path = export_onnx(model, tmp_path / "context.onnx", "context")
    session = onnx_session(path)
    meta = session.get_modelmeta().custom_metadata_map
    assert (int(meta["context_samples"]), int(meta["window_samples"])) == (8000, 32000)
    assert session.get_inputs()[0].shape[1] == 32000
    worst = max_differences(model, session, [load_audio(SAMPLES[0]), noise(2.3)])
    assert max(worst.values()) <= PARITY, worst
    namespace = documented_rule(path)
    # Not a resampled pure tone: the documented resampling is ~1e-5 from torchaudio's, and a trained
    # log-mel of a pure tone's silent bins magnifies that to ~1e-2 with or without context.
    cases = [(noise(3.7), 16000), (noise(0.3), 16000), (noise(2.0)[:57330], 44100)]
    assert_the_rule_gives_the_packages_neuralogram(namespace["embed"], model, cases)
