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
            -0.010847,
            -0.094159,
            0.109615,
            -0.059366,
            -0.073591,
            0.045187,
            0.032517,
            -0.023913,
            -0.037849,
            0.058545,
            -0.00902,
            -0.024225
        ],
        "top": [
            "cow",
            "church_bells",
            "siren"
        ],
        "logits": [
            3.626711,
            2.586932,
            -0.034408
        ]
    },
    "5-203128-A-0.flac": {
        "embedding": [
            -0.137476,
            -0.08532,
            0.017665,
            -0.059906,
            -0.04713,
            0.080232,
            0.007232,
            -0.00473,
            0.035222,
            -0.018741,
            0.018361,
            -0.007449
        ],
        "top": [
            "dog",
            "laughing",
            "hen"
        ],
        "logits": [
            3.072786,
            1.342087,
            0.772098
        ]
    },
    "5-181766-A-10.flac": {
        "embedding": [
            -0.065566,
            -0.099814,
            -0.090946,
            -0.017336,
            -0.014433,
            0.023429,
            0.004361,
            0.038189,
            0.022531,
            -0.007562,
            0.030204,
            0.062028
        ],
        "top": [
            "sea_waves",
            "rain",
            "crow"
        ],
        "logits": [
            2.561883,
            1.787167,
            -0.063926
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

