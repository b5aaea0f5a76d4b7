import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
ESC50 = Path(os.environ.get("DIVERSE_EMBED_ESC50", REPO.parent / "shared" / "data" / "esc50"))


def pytest_configure(config):
    # Nothing a test does may land outside a temporary folder: the caches that default to the
    # home folder (decoded audio, the Hugging Face cache) and hypothesis's database go to one
    # folder made for this run, removed at its end. Set before the package is imported.
    config.private_home = tempfile.mkdtemp(prefix="diverse-embed-tests-")
    os.environ["HOME"] = config.private_home
    os.environ["XDG_CACHE_HOME"] = os.path.join(config.private_home, ".cache")
    os.environ["HF_HOME"] = os.path.join(config.private_home, ".cache", "huggingface")
    # Subprocesses (torchrun's log folders, torch.distributed's generated modules) write their
    # temporary files there too. This process keeps the usual one, where pytest keeps failing tests' folders.
    os.environ["TMPDIR"] = os.path.join(config.private_home, "tmp")
    os.makedirs(os.environ["TMPDIR"])
    settings.register_profile("private", database=None)
    settings.load_profile("private")


def pytest_unconfigure(config):
    shutil.rmtree(config.private_home, ignore_errors=True)


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


RNG = np.random.default_rng(0)


def noise(seconds: float, amplitude: float = 0.1) -> np.ndarray:
    return (RNG.standard_normal(int(seconds * 16000)) * amplitude).astype(np.float32)


def tiny_config(**changes):
    """A model of the same kind at a fraction of the size (1 layer of width 16, a quarter-width
    MobileNet), for tests where the trained model's size does not matter."""
    from diverse_embed.config import DiverseEmbedConfig, NeuralogramConfig

    values = dict(
        d_model=16,
        n_layers=1,
        n_heads=2,
        head_dim=8,
        ff_dim=32,
        num_labels=7,
        neuralogram=NeuralogramConfig(mobilenet_width=0.25),
    )
    return DiverseEmbedConfig(**{**values, **changes})


def sine(freq: float, seconds: float, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


VOCABULARY = [("0", "Bark", "/m/05tny_"), ("1", "Keyboard_(musical)", "/m/05148p4"), ("2", "Rain", "/m/06mb1")]


@pytest.fixture(scope="session")
def fsd50k(tmp_path_factory):
    """FSD-50K's layout and CSV formats (quoted comma-separated labels), 44.1 kHz WAV, one bad file."""
    root = tmp_path_factory.mktemp("FSD50K")
    truth, dev, evaluation = root / "FSD50K.ground_truth", root / "FSD50K.dev_audio", root / "FSD50K.eval_audio"
    for folder in (truth, dev, evaluation):
        folder.mkdir()
    with open(truth / "vocabulary.csv", "w", newline="") as f:
        csv.writer(f).writerows(VOCABULARY)
    rng = np.random.default_rng(0)

    def sound(labels):
        audio = np.zeros(int(44100 * 2.5), np.float32)
        if "Bark" in labels:
            audio += sine(300, 2.5, rate=44100, amplitude=0.3)
        if "Keyboard_(musical)" in labels:
            audio += sine(1000, 2.5, rate=44100, amplitude=0.2)
        if "Rain" in labels:
            audio += 0.1 * rng.standard_normal(len(audio)).astype(np.float32)
        return audio

    label_sets = [["Bark"], ["Keyboard_(musical)"], ["Rain"], ["Bark", "Rain"], ["Keyboard_(musical)", "Rain"]]
    rows = []
    for i in range(20):
        labels = label_sets[i % len(label_sets)]
        write_wav(dev / f"{1000 + i}.wav", sound(labels), rate=44100)
        mids = [m for _, name, m in VOCABULARY if name in labels]
        rows.append([str(1000 + i), ",".join(labels), ",".join(mids), "train" if i < 15 else "val"])
    (dev / "1019.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a clip that cannot be decoded
    with open(truth / "dev.csv", "w", newline="") as f:
        writer = csv.writer(f)  # quotes the fields that hold commas, as the real file does
        writer.writerow(["fname", "labels", "mids", "split"])
        writer.writerows(rows)
    with open(truth / "eval.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fname", "labels", "mids"])
        for i in range(10):
            labels = label_sets[i % len(label_sets)]
            write_wav(evaluation / f"{2000 + i}.wav", sound(labels), rate=44100)
            writer.writerow([str(2000 + i), ",".join(labels), ",".join(m for _, n, m in VOCABULARY if n in labels)])
    return root


# Training options of a run that takes seconds: one epoch a phase, small batches, no workers.
TINY = [
    "--neuralogram-epochs",
    "1",
    "--branch-epochs",
    "1",
    "--fusion-epochs",
    "2",
    "--batch-size",
    "8",
    "--num-workers",
    "0",
    "--quiet",
]


def fake_wheel(path, seed=0, extra=None):
    """A wheel holding what aisfx's does: a torch pickle of (state_dict, datasets) with numpy integers."""
    import zipfile

    from diverse_embed import teacher  # here: the package is imported after pytest_configure sets HOME

    torch.manual_seed(seed)
    network = teacher.SoundEffectsCNN()
    state = {f"embedding_net.{k}": v for k, v in network.state_dict().items()}
    state["fc.0.0.weight"] = torch.zeros(256, 512)  # the classifiers beside the network are not loaded
    state.update(extra or {})
    pickle = path.parent / "checkpoint.pth"
    torch.save((state, {"PSE": (np.int64(0), np.int64(78))}), pickle)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.write(pickle, teacher.CHECKPOINT_IN_WHEEL)
    return path, network
