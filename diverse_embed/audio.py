"""Decoding, validation, resampling and chunking of audio.

Everything downstream sees mono float32 at 16 kHz, cut into 1-second chunks.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

LOG = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CHUNK_SECONDS = 1.0
CHUNK_SAMPLES = int(SAMPLE_RATE * CHUNK_SECONDS)  # 16000

# Extensions that `find_audio_files` picks up when given a folder (case-insensitive).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


class AudioLoadError(ValueError):
    """An audio file or array that cannot be embedded. `source` names the file (or "array")."""

    def __init__(self, source: str | os.PathLike, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # crosses process boundaries (DataLoader workers) intact
        return type(self), (self.source, self.reason)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate`. Returns shape (samples,).

    Channels are averaged (never concatenated); resampling uses torchaudio.
    Raises AudioLoadError naming the file for anything that is not usable audio.
    """
    path = Path(path)
    if not path.exists():
        raise AudioLoadError(path, "no such file")
    if path.is_dir():
        raise AudioLoadError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioLoadError(path, f"not readable as audio, or corrupt ({err})") from None
    if info.frames > 0 and len(data) < info.frames:
        raise AudioLoadError(path, f"truncated: header says {info.frames} frames, only {len(data)} decoded")
    if _declares_more_data_than_present(info):
        raise AudioLoadError(path, "truncated: the file ends before the data its header declares")
    return prepare_waveform(data.mean(axis=1), file_rate, sample_rate, source=path)


def _declares_more_data_than_present(info: sf._SoundFileInfo) -> bool:
    # libsndfile quietly shortens a WAV/AIFF whose data chunk runs past the end of the file and
    # notes it in its log ("data : 32000 (should be 19956)"); that log is the only place it shows.
    match = re.search(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra_info, re.MULTILINE)
    return bool(match) and int(match.group(2)) < int(match.group(1))


def prepare_waveform(
    audio: np.ndarray | torch.Tensor,
    sample_rate: int | None,
    target_rate: int = SAMPLE_RATE,
    source: str | os.PathLike = "array",
) -> np.ndarray:
    """Validate a mono waveform and resample it. Returns float32 (samples,) at `target_rate`.

    Accepts float arrays in [-1, 1] and int16/int32 PCM (scaled to [-1, 1]).
    """
    if sample_rate is None:
        raise AudioLoadError(source, "sample_rate is required (e.g. embed(audio, sample_rate=16000))")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioLoadError(source, f"sample_rate must be a positive integer, got {sample_rate!r}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioLoadError(
            source, f"expected a mono waveform of shape (samples,), got shape {audio.shape}; "
            "average the channels first, e.g. audio.mean(axis=0)"
        )
    audio = _to_float32(audio, source)
    if audio.size == 0:
        raise AudioLoadError(source, "zero samples")
    if not np.isfinite(audio).all():
        raise AudioLoadError(source, f"{int((~np.isfinite(audio)).sum())} samples are NaN or infinite")
    if sample_rate != target_rate:
        audio = AF.resample(torch.from_numpy(audio), int(sample_rate), target_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)


def _to_float32(audio: np.ndarray, source) -> np.ndarray:
    if np.issubdtype(audio.dtype, np.floating):
        return audio.astype(np.float32, copy=False)
    if audio.dtype in (np.int16, np.int32):
        return audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    raise AudioLoadError(source, f"unsupported sample type {audio.dtype}; use float32 in [-1, 1] or int16")


def num_chunks(
    num_samples: int, hop_samples: int = CHUNK_SAMPLES, chunk_samples: int = CHUNK_SAMPLES, min_final_samples: int = 1
) -> int:
    """How many chunks `chunk` makes: at least one; the last one is zero-padded, and dropped when
    it would hold fewer than `min_final_samples` samples of audio (unless it is the only one)."""
    n = 1 + math.ceil(max(0, num_samples - chunk_samples) / hop_samples)
    if n > 1 and num_samples - (n - 1) * hop_samples < min_final_samples:
        n -= 1
    return n


def chunk(
    waveform: np.ndarray | torch.Tensor,
    hop_samples: int = CHUNK_SAMPLES,
    chunk_samples: int = CHUNK_SAMPLES,
    min_final_samples: int = 1,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[torch.Tensor, np.ndarray]:
    """Cut a waveform (samples,) into chunks (n_chunks, chunk_samples), zero-padding the last.

    Returns the chunks and their start times in seconds (n_chunks,). A clip shorter than one
    chunk becomes one padded chunk. A final partial chunk shorter than `min_final_samples`
    (a 5.00006-s file's last sample, say) is dropped rather than averaged in as near-silence.
    """
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    n = num_chunks(len(waveform), hop_samples, chunk_samples, min_final_samples)
    padded_length = (n - 1) * hop_samples + chunk_samples
    padded = torch.nn.functional.pad(waveform, (0, max(0, padded_length - len(waveform))))
    chunks = padded.unfold(0, chunk_samples, hop_samples)  # (n_chunks, chunk_samples)
    starts = np.arange(n, dtype=np.float64) * hop_samples / sample_rate
    return chunks.contiguous(), starts


def find_audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively) into a sorted list of audio files."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                LOG.warning("%s: no audio files found (looked for %s)", item, ", ".join(AUDIO_EXTENSIONS))
            files.extend(found)
        else:
            files.append(item)  # a named file is kept whatever its extension; loading will judge it
    return files
