"""The config: validation, JSON round trip, the 0.1.0 flat format, branch columns."""

import json

import pytest

from conftest import REPO
from diverse_embed.config import DiverseEmbedConfig, NeuralogramConfig


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="branches"):
        DiverseEmbedConfig(branches=["pitch", "loudness"])
    with pytest.raises(ValueError, match="id2label"):
        DiverseEmbedConfig(num_labels=3, id2label={0: "a", 1: "b"})


def test_json_round_trip_and_integer_label_keys():
    config = DiverseEmbedConfig(
        num_labels=2, id2label={0: "dog", 1: "rain"}, neuralogram=NeuralogramConfig(mel_bins=32)
    )
    again = DiverseEmbedConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.id2label == {0: "dog", 1: "rain"} and again.neuralogram.mel_bins == 32


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match="rotary"):
        DiverseEmbedConfig.from_dict({"rotary": True})
    with pytest.raises(ValueError, match=r"pitch\.n_ftt"):
        DiverseEmbedConfig.from_dict({"pitch": {"n_ftt": 1024}})


def test_the_flat_format_of_0_1_0_still_loads():
    flat = {
        "pitch_n_fft": 1024,
        "n_mfcc": 20,
        "mfcc_window_ms": 40.0,
        "waveform_patch_ms": 25.0,
        "mel_bins": 32,
        "mobilenet_time_stride": 8,
        "d_model": 64,
    }
    config = DiverseEmbedConfig.from_dict(flat)
    assert (config.pitch.n_fft, config.timbre.n_mfcc, config.timbre.window_ms) == (1024, 20, 40.0)
    assert (config.neuralogram.mel_bins, config.neuralogram.mobilenet_time_stride) == (32, 8)
    assert config.pitch.fmin_hz == 50.0  # what the old file did not say keeps its default


def test_the_bundled_config_is_the_default_shape():
    bundled = json.loads((REPO / "diverse_embed" / "pretrained" / "diverse-embed-esc50" / "config.json").read_text())
    config = DiverseEmbedConfig.from_dict(bundled)
    labels = ("num_labels", "id2label", "problem_type")  # the head's classes, not the network's shape
    assert {k: v for k, v in config.to_dict().items() if k not in labels} == {
        k: v for k, v in DiverseEmbedConfig().to_dict().items() if k not in labels
    }
    assert config.problem_type == "single_label_classification"  # trained with one label per ESC-50 clip


def test_problem_type_is_checked_and_left_out_of_the_fingerprint():
    import pytest

    from diverse_embed import DiverseEmbedder

    with pytest.raises(ValueError, match="problem_type"):
        DiverseEmbedConfig(problem_type="regression")
    plain = DiverseEmbedder(DiverseEmbedConfig(num_labels=4))
    labelled = DiverseEmbedder(DiverseEmbedConfig(num_labels=4, problem_type="multi_label_classification"))
    labelled.load_state_dict(plain.state_dict())
    assert labelled.fingerprint() == plain.fingerprint()


def test_branch_slices_tile_the_embedding():
    config = DiverseEmbedConfig(branches=["timbre", "pitch"])
    assert config.branch_slice("timbre") == slice(0, 64) and config.branch_slice("pitch") == slice(64, 128)
    assert config.frame_hop_samples == 400 and config.waveform_patch_samples == 400
