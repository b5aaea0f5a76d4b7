"""The speech_embedding teacher: read from the openwakeword 0.4.0 wheel, each graph checked
(strict), and the real one's reference vector where the wheel can be had
(DIVERSE_EMBED_SPEECH_TEACHER=the wheel; .ci/run downloads it)."""

import json
import zipfile

import numpy as np
import pytest

from conftest import REPO
from diverse_embed import speech_teacher
from diverse_embed.errors import CheckpointError

REFERENCE = REPO / "tests" / "fixtures" / "speech_embedding_reference.json"


def tiny_graph(input_name: str, output_name: str) -> bytes:
    """An ONNX graph (identity) with the given names: not speech_embedding's shapes."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [input_name], [output_name])],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_wrong_wheel_is_one_clear_error(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(CheckpointError, match="no openwakeword wheel here"):
        speech_teacher.load_speech_teacher(tmp_path / "missing.whl")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not the openwakeword 0.4.0 wheel"):
        speech_teacher.load_speech_teacher(tmp_path / "junk.whl")
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as wheel:
        wheel.writestr("other/file.txt", "x")
    with pytest.raises(CheckpointError, match="not the openwakeword 0.4.0 wheel"):
        speech_teacher.load_speech_teacher(tmp_path / "other.whl")
    with zipfile.ZipFile(tmp_path / "broken.whl", "w") as wheel:
        for name in speech_teacher.FILES_IN_WHEEL.values():
            wheel.writestr(name, b"garbage")
    with pytest.raises(CheckpointError, match="melspectrogram.onnx is not an ONNX graph"):
        speech_teacher.load_speech_teacher(tmp_path / "broken.whl")


def test_graphs_of_another_shape_are_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    with zipfile.ZipFile(tmp_path / "lookalike.whl", "w") as wheel:
        for name in speech_teacher.FILES_IN_WHEEL.values():
            wheel.writestr(name, tiny_graph("input", "output"))
    with pytest.raises(CheckpointError, match="not speech_embedding's"):
        speech_teacher.load_speech_teacher(tmp_path / "lookalike.whl")


@pytest.mark.integration
def test_the_real_teacher_gives_its_reference_vector():
    wheel = speech_teacher.find_speech_teacher()
    if wheel is None or not wheel.is_file():
        pytest.skip(
            "the openwakeword wheel is not here: pip download openwakeword==0.4.0 --no-deps -d DIR, "
            "then DIVERSE_EMBED_SPEECH_TEACHER=DIR/openwakeword-0.4.0-py3-none-any.whl"
        )
    pytest.importorskip("onnxruntime", reason="the speech teacher runs on onnxruntime (the export extra)")
    from diverse_embed.audio import load_audio

    teacher = speech_teacher.load_speech_teacher(wheel)
    reference = json.loads(REFERENCE.read_text())
    audio = load_audio(REPO / "diverse_embed" / "samples" / reference["sample"], speech_teacher.SAMPLE_RATE)
    assert teacher.window_vectors(audio).shape == (16, 96)  # 2 s: 197 mel frames, a window every 8
    np.testing.assert_allclose(teacher.clip_vector(audio), reference["vector"], atol=1e-3)
    short = teacher.window_vectors(np.zeros(1000, np.float32))  # centred in zeros: one window
    assert short.shape == (1, 96) and np.isfinite(short).all()
    from diverse_embed.config import DiverseEmbedConfig

    per_chunk = teacher.chunk_vectors(audio, DiverseEmbedConfig())  # distillation's targets: a window per chunk
    assert per_chunk.shape == (2, 96) and np.isfinite(per_chunk).all()
