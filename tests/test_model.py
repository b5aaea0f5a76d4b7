"""The network: attention, input checks, size, branch selection."""

import pytest
import torch

from conftest import noise
from diverse_embed import DiverseEmbedConfig, DiverseEmbedder
from diverse_embed.model import explicit_attention


@pytest.mark.parametrize("frames", [3, 41])
def test_explicit_attention_is_scaled_dot_product_attention(frames):
    # The CPU path writes attention out (faster at these sizes); GPUs use PyTorch's SDPA.
    q, k, v = torch.randn(3, 5, 12, frames, 8).unbind(0)  # (batch, heads, frames, head_dim)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(explicit_attention(q, k, v, dropout=0.0), expected, rtol=1e-5, atol=1e-6)


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
