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
            -0.092484,
            -0.068581,
            -0.098273,
            0.061026,
            0.017271,
            -0.04331,
            -0.041798,
            0.008137,
            0.009502,
            0.095339,
            0.0735,
            -0.085729
        ],
        "top": [
            "philharmonia/bass clarinet",
            "arabic-commands/ok",
            "nemo/sadness"
        ],
        "logits": [
            4.793455,
            3.896884,
            3.757764
        ]
    },
    "5-203128-A-0.flac": {
        "embedding": [
            -0.097681,
            0.055352,
            -0.058509,
            0.04649,
            -0.050258,
            -0.016972,
            -0.057451,
            -0.045082,
            -0.032834,
            0.062576,
            0.042194,
            0.016428
        ],
        "top": [
            "esc50/dog",
            "wake-words/alexa",
            "arabic-commands/enter"
        ],
        "logits": [
            5.979805,
            5.928085,
            3.560609
        ]
    },
    "5-181766-A-10.flac": {
        "embedding": [
            -0.014947,
            0.081506,
            -0.00083,
            -0.003318,
            -0.018606,
            0.090694,
            -0.02424,
            0.008515,
            -0.020664,
            0.059229,
            0.017929,
            0.052325
        ],
        "top": [
            "esc50/sea_waves",
            "esc50/door_wood_creaks",
            "arabic-commands/forward"
        ],
        "logits": [
            6.459465,
            3.978546,
            2.672397
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
    labels = list(bundled.config.id2label.values())  # CORPUS/LABEL: seven corpora, ESC-50's 50 classes among them
    assert len(labels) == 120 and sum(label.startswith("esc50/") for label in labels) == 50
    assert bundled.config.problem_type == "single_label_classification"  # a softmax per corpus
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

