"""The aisfx teacher: its network, its input, and reading its weights from the wheel strictly and
without running pickled code. The real wheel's test runs where it can be had
(DIVERSE_EMBED_TEACHER=the wheel; .ci/run downloads it)."""

import json
import zipfile

import numpy as np
import pytest
import torch

from conftest import REPO, fake_wheel, sine
from diverse_embed import teacher
from diverse_embed.errors import CheckpointError

REFERENCE = REPO / "tests" / "fixtures" / "aisfx_reference.json"


def test_the_network_gives_one_512_vector_per_block():
    network = teacher.SoundEffectsCNN().eval()
    assert sum(p.numel() for p in network.parameters()) == 4_686_144
    with torch.no_grad():
        assert network.embed(torch.rand(3, 100, 96)).shape == (3, 512)
        assert network(torch.rand(1, 200, 96)).shape == (1, 512, 25)  # 3 poolings: frames / 8


def test_the_input_is_a_log_mel_of_2048_point_frames():
    audio = teacher.peak_normalised(sine(1000, 2.0, rate=44100, amplitude=0.1))
    assert float(audio.abs().max()) == pytest.approx(1.0)
    frames = teacher.log_mel(audio)
    assert frames.shape == (1 + 88200 // 1024, 96)
    mel = np.linspace(0, 2595 * np.log10(1 + 22050 / 700), 98)  # HTK: 96 bands between 98 points
    centres = 700 * (10 ** (mel[1:-1] / 2595) - 1)
    assert abs(centres[int(frames[40].argmax())] - 1000) < 50  # the tone is in its own band
    assert float(teacher.log_mel(torch.zeros(4096)).abs().max()) == 0.0  # silence is exactly 0: the padding
    assert teacher.blocks(frames).shape == (1, 100, 96)  # a short clip: one zero-padded block
    assert teacher.blocks(torch.ones(160, 96), 50).shape == (3, 100, 96)  # as aisfx blocks: ceil((160 - 100) / 50) + 1


def test_the_wheel_loads_strictly_and_weights_only(tmp_path):
    wheel, network = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")
    loaded = teacher.load_teacher(wheel)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), network.state_dict().values()))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert teacher.load_teacher(tmp_path / "checkpoint.pth").state_dict().keys() == network.state_dict().keys()


def test_a_wrong_teacher_file_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no aisfx wheel"):
        teacher.load_teacher(tmp_path / "missing.whl")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not an aisfx checkpoint"):
        teacher.load_teacher(tmp_path / "junk.whl")
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as wheel:
        wheel.writestr("other/file.txt", "x")
    with pytest.raises(CheckpointError, match="not an aisfx checkpoint"):
        teacher.load_teacher(tmp_path / "other.whl")
    wheel, _ = fake_wheel(tmp_path / "bad.whl", extra={"embedding_net.conv_block1.conv1.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="do not fit"):
        teacher.load_teacher(wheel)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save(({"x": Exploit()}, {}), tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="not an aisfx checkpoint"):
        teacher.load_teacher(tmp_path / "checkpoint.pth")


@pytest.mark.integration
def test_the_real_teacher_gives_its_reference_vector():
    wheel = teacher.find_teacher()
    if wheel is None or not wheel.is_file():
        pytest.skip(
            "the aisfx wheel is not here: pip download aisfx==0.1.2 --no-deps -d DIR, "
            "then DIVERSE_EMBED_TEACHER=DIR/aisfx-0.1.2-py2.py3-none-any.whl"
        )
    from diverse_embed.audio import load_audio

    network = teacher.load_teacher(wheel)  # strict: every weight of the wheel's embedding_net
    reference = json.loads(REFERENCE.read_text())
    audio = load_audio(REPO / "diverse_embed" / "samples" / reference["sample"], teacher.SAMPLE_RATE)
    vector = teacher.clip_vector(network, audio)
    assert np.abs(vector - np.array(reference["vector"])).max() < 1e-4
