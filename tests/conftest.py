import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
ESC50 = Path(os.environ.get("DIVERSE_EMBED_ESC50", REPO.parent / "shared" / "data" / "esc50"))


def pytest_addoption(parser):
    parser.addoption("--integration", action="store_true", help="also run the slower tests on real audio")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--integration"):
        return
    skip = pytest.mark.skip(reason="integration test: run with --integration")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def esc50() -> Path:
    if not (ESC50 / "meta" / "esc50.csv").is_file():
        pytest.skip(f"ESC-50 not found at {ESC50} (set DIVERSE_EMBED_ESC50 to its folder)")
    return ESC50


@pytest.fixture(scope="session")
def model():
    """The default-size model with fixed random weights, in eval mode."""
    from diverse_embed import DiverseEmbedConfig, DiverseEmbedder

    torch.manual_seed(0)
    return DiverseEmbedder(DiverseEmbedConfig()).eval()


def sine(freq: float, seconds: float, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path
