"""Ablation subsets and their columns, clip means, the metrics report."""

from types import SimpleNamespace

import numpy as np

from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.evaluate import clip_means, columns, metrics_markdown, subsets


def test_subsets_and_their_columns():
    config = DiverseEmbedConfig(branches=["pitch", "timbre", "waveform"])
    found = subsets(config.branches)
    assert list(found) == ["fused", "pitch", "timbre", "waveform", "-pitch", "-timbre", "-waveform"]
    assert columns(config, found["-timbre"]).tolist() == list(range(0, 64)) + list(range(128, 192))
    assert columns(config, ["timbre"]).tolist() == list(range(64, 128))
    assert list(subsets(["timbre"])) == ["fused"]  # nothing to leave out of one branch


def test_clip_means_average_each_clips_chunks():
    dataset = SimpleNamespace(index=np.array([[0, 0], [0, 1], [1, 0]]), clips=[None, None])
    np.testing.assert_allclose(clip_means(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]]), dataset), [[2, 1], [5, 5]])


def test_report_names_each_system_and_leaves_out_empty_sections():
    scores = {"macro_map": 0.5, "micro_map": 0.6, "d_prime": 1.0, "lwlrap": 0.7, "accuracy": None}
    text = metrics_markdown({"results": {"test": {"clips": 3, "systems": {"fused": scores, "-pitch": scores}}}})
    assert "| fused (all branches) | 0.500 |" in text and "| without pitch |" in text
    assert "throughput" not in text  # evaluate has none to report
