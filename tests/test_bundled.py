"""The checkpoint that ships in the package: it loads by name, offline, from a plain (non-editable)
install, and its outputs stay what they were when it was bundled (a silent change of weights,
features or preprocessing fails here)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import safetensors

from conftest import REPO
from diverse_embed import DEFAULT_MODEL, DiverseEmbedder, bundled_models
from diverse_embed.audio import load_audio

# Recorded from the bundled checkpoint when it was made (scripts/print_bundled_reference.py).
# First 12 embedding values, and the three best classes with their mean chunk logits.
REFERENCE = {
    "note_220hz_harmonic.wav": {
        "embedding": [
            -0.021209,
            0.021628,
            0.07419,
            -0.008191,
            0.119018,
            0.077689,
            0.086006,
            -0.016199,
            -0.025068,
            0.111384,
            0.09683,
            -0.03894
        ],
        "top": [
            "cow",
            "airplane",
            "insects"
        ],
        "logits": [
            3.305219,
            0.821528,
            -0.149241
        ]
    },
    "5-203128-A-0.flac": {
        "embedding": [
            0.012471,
            -0.003347,
            -0.053734,
            -0.015836,
            0.070137,
            0.041754,
            0.045727,
            0.033389,
            -0.007662,
            0.022492,
            0.068868,
            -0.01813
        ],
        "top": [
            "dog",
            "laughing",
            "hen"
        ],
        "logits": [
            2.734179,
            0.504502,
            0.24469
        ]
    },
    "5-181766-A-10.flac": {
        "embedding": [
            -0.006876,
            -0.046349,
            0.001221,
            -0.110275,
            0.090743,
            0.038625,
            0.017701,
            -0.06073,
            0.00825,
            0.024567,
            -0.079934,
            -0.061914
        ],
        "top": [
            "sea_waves",
            "rain",
            "clapping"
        ],
        "logits": [
            3.192665,
            0.252849,
            -0.625713
        ]
    }
}


@pytest.fixture(scope="module")
def bundled():
    return DiverseEmbedder.from_pretrained(DEFAULT_MODEL)


def check(model, audio, expected):
    output = model.embed(audio, sample_rate=16000)
    np.testing.assert_allclose(output.embedding[:12], expected["embedding"], atol=1e-4)
    top = np.argsort(-output.logits)[:3]
    assert [model.config.id2label[int(i)] for i in top] == expected["top"]
    np.testing.assert_allclose(output.logits[top], expected["logits"], atol=1e-4)


def test_default_model_is_bundled_in_half_precision(bundled):
    folder = bundled_models()[DEFAULT_MODEL]
    assert folder.parent == REPO / "diverse_embed" / "pretrained"
    with safetensors.safe_open(str(folder / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert "F16" in dtypes and "F32" not in dtypes
    assert bundled.config.num_labels == 50 and bundled.config.id2label[0] == "airplane"
    assert not bundled.training


def test_outputs_on_a_packaged_sample_are_unchanged(bundled):
    check(bundled, load_audio(REPO / "diverse_embed" / "samples" / "note_220hz_harmonic.wav"), REFERENCE["note_220hz_harmonic.wav"])


@pytest.mark.integration
@pytest.mark.parametrize("name", ["5-203128-A-0.flac", "5-181766-A-10.flac"])
def test_outputs_on_esc50_clips_are_unchanged(bundled, esc50, name):
    check(bundled, load_audio(esc50 / "audio" / name), REFERENCE[name])


@pytest.mark.integration
def test_plain_install_loads_the_bundled_model_offline(tmp_path):
    """`pip install .` (not editable) into a folder of its own, then from_pretrained by name with
    the Hub switched off: the weights must come from inside the installed package."""
    # As a user's `pip install .`: pip builds the wheel in isolation (fetching setuptools from
    # the package index); --no-deps because torch and the rest are already here.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(tmp_path / "site"), str(REPO)],
        capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    code = ("import json, diverse_embed; from diverse_embed import DiverseEmbedder, DEFAULT_MODEL, bundled_models; "
            "m = DiverseEmbedder.from_pretrained(DEFAULT_MODEL); "
            "print(json.dumps([diverse_embed.__file__, str(bundled_models()[DEFAULT_MODEL]), m.fingerprint()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    package, folder, fingerprint = json.loads(out.stdout.strip().splitlines()[-1])
    assert package.startswith(str(tmp_path / "site")) and folder.startswith(str(tmp_path / "site"))
    assert fingerprint == DiverseEmbedder.from_pretrained(DEFAULT_MODEL).fingerprint()

