"""Google's speech_embedding (a keyword-spotting network, 328 k parameters), as openWakeWord ships
it: a teacher for speech, which the sound-effects teacher (teacher.py) and the branches hear least.

Its two ONNX files ship inside the openwakeword 0.4.0 wheel on PyPI (0.6.0 no longer holds them):

    pip download openwakeword==0.4.0 --no-deps -d DIR     # never installed: only its two files are read

`load_speech_teacher(DIR/openwakeword-0.4.0-py3-none-any.whl)` runs them with onnxruntime (the
`teachers` extra). The wheel's README: the included models are CC BY-NC-SA 4.0; the network is
Google's speech_embedding (Apache-2.0 on TF Hub).

16-kHz audio scaled to int16 values (x * 32767, as float32) -> mel frames (frames, 32), then
`/ 10 + 2` as openWakeWord feeds them -> windows of 76 frames every 8 -> one 96-d vector each.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import centred_windows
from .config import DiverseEmbedConfig
from .errors import CheckpointError

SAMPLE_RATE = 16000
WINDOW_FRAMES, WINDOW_HOP = 76, 8  # mel frames per vector, and between vectors (10-ms frames)
MEL_BANDS, WIDTH = 32, 96
MIN_SAMPLES = 12640  # what one window of 76 frames needs: a shorter clip is centred in zeros
FILES_IN_WHEEL = {
    "mel": "openwakeword/resources/models/melspectrogram.onnx",
    "embedding": "openwakeword/resources/models/embedding_model.onnx",
}
# What each graph must take and give (name, shape; None: any length): anything else is refused.
EXPECTED = {
    "mel": (("input", [None, None]), ("output", [None, 1, None, MEL_BANDS])),
    "embedding": (("input_1", [None, WINDOW_FRAMES, MEL_BANDS, 1]), ("conv2d_19", [None, 1, 1, WIDTH])),
}


@dataclass
class SpeechTeacher:
    """The two onnxruntime sessions: audio -> mel frames, mel windows -> 96-d vectors."""

    mel: object  # onnxruntime.InferenceSession
    embedding: object

    def mel_frames(self, audio: np.ndarray) -> np.ndarray:
        """16-kHz audio (samples,) in [-1, 1] -> (frames, 32), scaled as openWakeWord feeds the network."""
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) < MIN_SAMPLES:
            before = (MIN_SAMPLES - len(audio)) // 2
            audio = np.pad(audio, (before, MIN_SAMPLES - len(audio) - before))
        (frames,) = self.mel.run(None, {"input": (audio * 32767.0)[None]})  # (1, 1, frames, 32)
        return frames[0, 0] / 10.0 + 2.0

    def window_vectors(self, audio: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """16-kHz audio (samples,) -> (windows, 96): one vector per 76 mel frames, every 8."""
        frames = self.mel_frames(audio)
        starts = range(0, len(frames) - WINDOW_FRAMES + 1, WINDOW_HOP)
        windows = np.stack([frames[s : s + WINDOW_FRAMES] for s in starts])[..., None]  # (n, 76, 32, 1)
        vectors = [
            self.embedding.run(None, {"input_1": windows[i : i + batch_size]})[0]
            for i in range(0, len(windows), batch_size)
        ]
        return np.concatenate(vectors).reshape(-1, WIDTH)

    def clip_vector(self, audio: np.ndarray) -> np.ndarray:
        """A clip's vector as the issue measured the teacher: the mean of its window vectors (96,)."""
        return self.window_vectors(audio).mean(axis=0)

    def chunk_vectors(self, audio: np.ndarray, config: DiverseEmbedConfig) -> np.ndarray:
        """A clip at 16 kHz -> (n_chunks, 96): for each chunk, the one window centred on it."""
        return np.concatenate(
            [self.window_vectors(w) for w in centred_windows(audio, config, SAMPLE_RATE, MIN_SAMPLES)]
        )


def _shape(dims) -> list:
    return [d if isinstance(d, int) else None for d in dims]


def _session(data: bytes, part: str, source: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # the caller spreads work over cores
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own error types
        raise CheckpointError(f"{source}: {FILES_IN_WHEEL[part]} is not an ONNX graph ({err})") from None
    (inputs, outputs) = session.get_inputs(), session.get_outputs()
    found = ((inputs[0].name, _shape(inputs[0].shape)), (outputs[0].name, _shape(outputs[0].shape)))
    if len(inputs) != 1 or len(outputs) != 1 or found != EXPECTED[part]:
        raise CheckpointError(
            f"{source}: {FILES_IN_WHEEL[part]} takes and gives {found}, not speech_embedding's {EXPECTED[part]}"
        )
    return session


def load_speech_teacher(path: str | os.PathLike) -> SpeechTeacher:
    """The teacher from the openwakeword 0.4.0 wheel; each graph's input and output must be the
    ones speech_embedding has (strict), else CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no openwakeword wheel here (pip download openwakeword==0.4.0 --no-deps -d DIR)")
    try:
        with zipfile.ZipFile(path) as wheel:
            data = {part: wheel.read(name) for part, name in FILES_IN_WHEEL.items()}
    except (zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path}: not the openwakeword 0.4.0 wheel ({err})") from None
    return SpeechTeacher(**{part: _session(blob, part, path) for part, blob in data.items()})


def find_speech_teacher(path: str | os.PathLike | None = None) -> Path | None:
    """The wheel named by `path`, else by $DIVERSE_EMBED_SPEECH_TEACHER, else None."""
    chosen = path or os.environ.get("DIVERSE_EMBED_SPEECH_TEACHER")
    return Path(chosen).expanduser() if chosen else None
