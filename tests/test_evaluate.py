"""Ablation subsets and their columns, clip means, the metrics report."""

from types import SimpleNamespace

import numpy as np

from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.training.evaluate import clip_means, metrics_markdown


def test_subsets_and_their_columns():
    config = DiverseEmbedConfig(branches=["pitch", "timbre", "waveform"])
    found = config.branch_subsets()
    assert list(found) == ["fused", "pitch", "timbre", "waveform", "-pitch", "-timbre", "-waveform"]
    assert config.branch_columns(found["-timbre"]) == list(range(0, 64)) + list(range(128, 192))
    assert config.branch_columns(["timbre"]) == list(range(64, 128))
    assert list(DiverseEmbedConfig(branches=["timbre"]).branch_subsets()) == [
        "fused"
    ]  # nothing to leave out of one branch


def test_clip_means_average_each_clips_chunks():
    dataset = SimpleNamespace(index=np.array([[0, 0], [0, 1], [1, 0]]), clips=[None, None])
    np.testing.assert_allclose(clip_means(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]]), dataset), [[2, 1], [5, 5]])


def test_report_names_each_system_and_leaves_out_empty_sections():
    scores = {"macro_map": 0.5, "micro_map": 0.6, "d_prime": 1.0, "lwlrap": 0.7, "accuracy": None}
    text = metrics_markdown({"results": {"test": {"clips": 3, "systems": {"fused": scores, "-pitch": scores}}}})
    assert "| fused (all branches) | 0.500 |" in text and "| without pitch |" in text
    assert "throughput" not in text  # evaluate has none to report
