"""bfloat16 embedding (precision.py): where it is native it stays close to float32 and keeps the
library's promises; elsewhere it falls back to float32 with a warning."""

import warnings

import numpy as np
import pytest
import torch

from conftest import noise, tiny_config
from diverse_embed import DiverseEmbedder, precision
from diverse_embed.console import load_model
from diverse_embed.features import LogMel, MFCCFrames, SpectralPeaks

NATIVE = precision.native_bfloat16("cpu")


def tiny_model() -> DiverseEmbedder:
    torch.manual_seed(0)
    return DiverseEmbedder(tiny_config()).eval()


def test_float32_is_the_default_and_unknown_names_are_refused():
    assert DiverseEmbedder.precision == "float32"
    assert precision.autocast_dtype("float32", "cpu") is None
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, auto"):
        precision.autocast_dtype("bf16", "cpu")


def test_bfloat16_where_it_is_not_native_falls_back_to_float32(monkeypatch):
    model = tiny_model()
    clips = [noise(2.5), noise(1.0)]
    expected = [o.embedding for o in model.embed_batch(clips, 16000)]
    monkeypatch.setattr(precision, "native_bfloat16", lambda device: False)
    assert precision.autocast_dtype("auto", "cpu") is None  # auto: silently float32
    model.precision = "bfloat16"
    with pytest.warns(UserWarning, match="bfloat16 is not native on this cpu"):
        got = [o.embedding for o in model.embed_batch(clips, 16000)]
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_front_ends_stay_in_full_precision_under_autocast():
    config = tiny_config()
    chunks = torch.from_numpy(np.stack([noise(1.0), noise(1.0, 0.5)]))
    for front_end in (SpectralPeaks(config), MFCCFrames(config), LogMel(config)):
        expected = front_end(chunks)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = front_end(chunks)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.skipif(not NATIVE, reason="this processor has no native bfloat16 (AVX-512 BF16 or AMX)")
def test_native_bfloat16_is_close_deterministic_and_batch_independent():
    model = tiny_model()
    clips = [noise(1.0), noise(3.0), noise(6.5)]
    float32 = [o.embedding for o in model.embed_batch(clips, 16000)]
    model.precision = "auto"
    assert precision.autocast_dtype("auto", "cpu") == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # native: no fallback warning
        together = [o.embedding for o in model.embed_batch(clips, 16000)]
    alone = [model.embed(c, 16000).embedding for c in clips]
    again = [o.embedding for o in model.embed_batch(clips, 16000)]
    for f, t, a, g in zip(float32, together, alone, again):
        assert t.dtype == np.float32
        assert float(f @ t) > 0.999  # L2-normalised: the cosine
        assert not np.array_equal(f, t)  # bfloat16 did run
        np.testing.assert_allclose(t, a, atol=1e-6)
        np.testing.assert_array_equal(t, g)


def test_the_commands_set_the_precision(tmp_path):
    model, _ = load_model("untrained-seed0", "cpu", quiet=True, precision="auto")
    assert model.precision == "auto"
    from diverse_embed.cli import build_parser

    args = build_parser().parse_args(["embed", str(tmp_path), "-o", "x.npz", "--precision", "bfloat16"])
    assert args.precision == "bfloat16"
    assert build_parser().parse_args(["embed", str(tmp_path), "-o", "x.npz"]).precision == "float32"
