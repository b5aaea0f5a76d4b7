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

# Recorded from the bundled default, diverse-embed-multi-v4 (scripts/print_bundled_reference.py).
# First 12 embedding values, and the three best classes with their mean chunk logits.
REFERENCE = {
    "note_220hz_harmonic.wav": {
        "embedding": [
            -0.088543,
            -0.065658,
            -0.094084,
            0.058426,
            0.016535,
            -0.041464,
            -0.040017,
            0.007791,
            0.009097,
            0.091275,
            0.070368,
            -0.082075,
        ],
        "top": ["philharmonia/oboe", "general/music", "nemo/sadness"],
        "logits": [6.975782, 6.050719, 5.415769],
    },
    "5-203128-A-0.flac": {
        "embedding": [
            -0.084748,
            0.048023,
            -0.050762,
            0.040335,
            -0.043603,
            -0.014725,
            -0.049844,
            -0.039113,
            -0.028486,
            0.054291,
            0.036607,
            0.014253,
        ],
        "top": ["general/animal", "arabic-commands/stop", "esc50/dog"],
        "logits": [8.724786, 8.51697, 8.284769],
    },
    "5-181766-A-10.flac": {
        "embedding": [
            -0.014346,
            0.078228,
            -0.000797,
            -0.003185,
            -0.017858,
            0.087047,
            -0.023265,
            0.008173,
            -0.019833,
            0.056848,
            0.017208,
            0.050221,
        ],
        "top": ["general/nature", "esc50/rain", "arabic-commands/up"],
        "logits": [7.66752, 5.707992, 5.640059],
    },
}


# The same for the bundled models that are not the default (scripts/print_bundled_reference.py
# --model NAME); diverse-embed-multi-v2's as they were pinned while it was the default.
OPT_IN_REFERENCE = {
    "diverse-embed-multi-v3": {
        "note_220hz_harmonic.wav": {
            "embedding": [
                -0.088475,
                -0.065608,
                -0.094013,
                0.058381,
                0.016523,
                -0.041432,
                -0.039987,
                0.007785,
                0.00909,
                0.091206,
                0.070314,
                -0.082013,
            ],
            "top": ["general/music", "philharmonia/oboe", "nemo/sadness"],
            "logits": [7.486995, 6.83249, 5.027983],
        },
        "5-203128-A-0.flac": {
            "embedding": [
                -0.084681,
                0.047985,
                -0.050722,
                0.040303,
                -0.043569,
                -0.014713,
                -0.049805,
                -0.039082,
                -0.028464,
                0.054248,
                0.036579,
                0.014241,
            ],
            "top": ["general/animal", "esc50/dog", "arabic-commands/stop"],
            "logits": [9.227449, 8.478642, 7.559974],
        },
        "5-181766-A-10.flac": {
            "embedding": [
                -0.014293,
                0.07794,
                -0.000794,
                -0.003173,
                -0.017793,
                0.086727,
                -0.02318,
                0.008143,
                -0.01976,
                0.056638,
                0.017145,
                0.050036,
            ],
            "top": ["general/nature", "arabic-commands/up", "esc50/rain"],
            "logits": [7.771147, 7.209236, 5.382579],
        },
    },
    "diverse-embed-multi-v2": {
        "note_220hz_harmonic.wav": {
            "embedding": [
                -0.088319,
                -0.065493,
                -0.093847,
                0.058278,
                0.016494,
                -0.041359,
                -0.039916,
                0.007771,
                0.009074,
                0.091045,
                0.07019,
                -0.081868,
            ],
            "top": ["nemo/sadness", "general/music", "philharmonia/bass clarinet"],
            "logits": [6.818451, 6.202765, 5.107124],
        },
        "5-203128-A-0.flac": {
            "embedding": [
                -0.090047,
                0.051026,
                -0.053937,
                0.042857,
                -0.04633,
                -0.015645,
                -0.052961,
                -0.041559,
                -0.030268,
                0.057685,
                0.038897,
                0.015144,
            ],
            "top": ["wake-words/alexa", "general/animal", "esc50/dog"],
            "logits": [7.969349, 7.457773, 7.205775],
        },
        "5-181766-A-10.flac": {
            "embedding": [
                -0.014005,
                0.07637,
                -0.000778,
                -0.003109,
                -0.017434,
                0.08498,
                -0.022713,
                0.007979,
                -0.019362,
                0.055497,
                0.016799,
                0.049028,
            ],
            "top": ["general/nature", "arabic-commands/up", "esc50/sea_waves"],
            "logits": [7.086421, 5.872207, 5.33072],
        },
    },
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
    labels = list(bundled.config.id2label.values())  # CORPUS/LABEL: seven corpora and the general labels
    assert len(labels) == 127 and sum(label.startswith("esc50/") for label in labels) == 50
    assert [label for label in labels if label.startswith("general/")] == [
        "general/animal",
        "general/domestic",
        "general/human",
        "general/music",
        "general/nature",
        "general/speech",
        "general/urban",
    ]
    assert bundled.config.problem_type == "single_label_classification"  # a softmax per corpus
    assert not bundled.training


def test_outputs_on_a_packaged_sample_are_unchanged(bundled):
    check(
        bundled,
        load_audio(REPO / "diverse_embed" / "samples" / "note_220hz_harmonic.wav"),
        REFERENCE["note_220hz_harmonic.wav"],
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", ["5-203128-A-0.flac", "5-181766-A-10.flac"])
def test_outputs_on_esc50_clips_are_unchanged(bundled, esc50, name):
    check(bundled, load_audio(esc50 / "audio" / name), REFERENCE[name])


@pytest.fixture(scope="module", params=sorted(OPT_IN_REFERENCE))
def opt_in(request):
    """(name, model) of each bundled model with pinned outputs that is not the default, loaded once."""
    return request.param, DiverseEmbedder.from_pretrained(request.param)


def test_an_opt_in_models_outputs_on_a_packaged_sample_are_unchanged(opt_in):
    model_name, model = opt_in
    assert model_name != DEFAULT_MODEL and not model.training
    sample = REPO / "diverse_embed" / "samples" / "note_220hz_harmonic.wav"
    check(model, load_audio(sample), OPT_IN_REFERENCE[model_name]["note_220hz_harmonic.wav"])


@pytest.mark.integration
@pytest.mark.parametrize("name", ["5-203128-A-0.flac", "5-181766-A-10.flac"])
def test_an_opt_in_models_outputs_on_esc50_clips_are_unchanged(esc50, opt_in, name):
    model_name, model = opt_in
    check(model, load_audio(esc50 / "audio" / name), OPT_IN_REFERENCE[model_name][name])


@pytest.mark.integration
def test_plain_install_loads_the_bundled_model_offline(tmp_path):
    """`pip install .` (not editable) into a folder of its own, then from_pretrained by name with
    the Hub switched off: the weights must come from inside the installed package."""
    # As a user's `pip install .`: pip builds the wheel in isolation (fetching setuptools from
    # the package index); --no-deps because torch and the rest are already here.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(tmp_path / "site"), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    code = (
        "import json, diverse_embed; from diverse_embed import DiverseEmbedder, DEFAULT_MODEL, bundled_models; "
        "m = DiverseEmbedder.from_pretrained(DEFAULT_MODEL); "
        "print(json.dumps([diverse_embed.__file__, str(bundled_models()[DEFAULT_MODEL]), m.fingerprint()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    package, folder, fingerprint = json.loads(out.stdout.strip().splitlines()[-1])
    assert package.startswith(str(tmp_path / "site")) and folder.startswith(str(tmp_path / "site"))
    assert fingerprint == DiverseEmbedder.from_pretrained(DEFAULT_MODEL).fingerprint()


@pytest.mark.parametrize("previous", ["diverse-embed-multi", "diverse-embed-multi-v2"])
def test_a_previous_default_still_loads_and_its_indexes_still_search(tmp_path, capsys, previous):
    """A new default gets a new name; indexes built with an old one go on searching with it."""
    from diverse_embed.cli import main

    assert previous in bundled_models() and DEFAULT_MODEL != previous
    samples = REPO / "diverse_embed" / "samples"
    assert main(["index", "build", str(samples), "-o", str(tmp_path / "idx"), "--model", previous, "-q"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(samples / "tone_440hz.wav"), "-k", "1", "--json", "-q"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["results"][0]["path"].endswith("tone_440hz.wav") and found["results"][0]["score"] > 0.999
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["model"] == previous
