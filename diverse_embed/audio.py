"""Decoding, validation, resampling and chunking of audio.

Everything downstream sees mono float32 at 16 kHz, cut into chunks by the config's one rule
(`DiverseEmbedConfig.num_chunks`), whether a clip is in memory, streamed, cached for training or
windowed for the HEAR API.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T

from .config import SAMPLE_RATE, DiverseEmbedConfig
from .errors import AudioLoadError

LOG = logging.getLogger(__name__)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate`. Returns shape (samples,).

    Channels are averaged (never concatenated); resampling uses torchaudio.
    Raises AudioLoadError naming the file for anything that is not usable audio.
    """
    return np.concatenate(list(stream_audio(path, sample_rate)))


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """The file's header (frames, samplerate, channels, duration), or AudioLoadError naming it."""
    path = Path(path)
    if not path.exists():
        raise AudioLoadError(path, "no such file")
    if path.is_dir():
        raise AudioLoadError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "empty file (0 bytes)")
    try:
        with readable(path) as source:
            info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise AudioLoadError(path, f"not readable as audio, or corrupt ({err})") from None
    return checked_info(info, path)


def checked_info(info: sf._SoundFileInfo, source: str | os.PathLike) -> sf._SoundFileInfo:
    """A header that promises usable audio, or AudioLoadError naming `source`: not truncated, some
    samples, a sample rate that is audio."""
    if _declares_more_data_than_present(info):
        raise AudioLoadError(source, "truncated: the file ends before the data its header declares")
    if info.frames <= 0:
        raise AudioLoadError(source, "zero samples")
    check_rate(info.samplerate, source)
    return info


def decode_bytes(data: bytes, name: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A file's bytes (read from an object store, say) decoded as `load_audio` decodes the file:
    mono float32 (samples,) at `sample_rate`, or AudioLoadError naming `name`."""
    if not data:
        raise AudioLoadError(name, "empty file (0 bytes)")
    try:
        info = checked_info(sf.info(io.BytesIO(data)), name)
        audio = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0]  # (frames, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise AudioLoadError(name, f"not readable as audio, or corrupt ({err})") from None
    return prepare_waveform(audio.mean(axis=1), info.samplerate, sample_rate, source=name)


# libsndfile copies a file name into a buffer of 1,024 bytes; Linux allows paths of 4,096.
LIBSNDFILE_MAX_NAME = 1000


@contextmanager
def readable(path: str | os.PathLike) -> Iterator[bytes | BinaryIO]:
    """What to hand libsndfile for `path`: its name as bytes (any name the OS gives, UTF-8 or not),
    or an open file where the name is too long for libsndfile."""
    name = os.fsencode(path)
    if len(name) < LIBSNDFILE_MAX_NAME or not stat.S_ISREG(os.stat(name).st_mode):
        yield name
        return
    with open(name, "rb") as f:
        yield f


@contextmanager
def sound_file(path: str | os.PathLike) -> Iterator[sf.SoundFile]:
    with readable(path) as source, sf.SoundFile(source) as f:
        yield f


# Below this a "sample rate" is not audio: resampling 7,200 samples at 1 Hz to 16 kHz makes 2 hours.
MIN_SAMPLE_RATE = 1000
# Above this it is not either: the fastest rate of real converters is 768 kHz (DXD 705.6 kHz too).
# A 32-KB WAV declaring 2,147,483,647 Hz once asked the resampler for 320 GiB.
MAX_SAMPLE_RATE = 768_000


def check_rate(rate: int, source: str | os.PathLike) -> None:
    if rate < MIN_SAMPLE_RATE:
        raise AudioLoadError(
            source, f"sample rate {rate} Hz is below {MIN_SAMPLE_RATE} Hz: not audio that can be embedded"
        )
    if rate > MAX_SAMPLE_RATE:
        raise AudioLoadError(
            source, f"sample rate {rate:,} Hz is above {MAX_SAMPLE_RATE:,} Hz: not audio that can be embedded"
        )


# MPEG audio (an .mp3, or MP3 data inside a WAV): libsndfile estimates its frame count from the bit
# rate, and real files miss it by a few percent, so the decoder decides the length.
LENGTH_ESTIMATED = ("MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III")


# Samples (frames x channels) decoded at once: memory bounds the block, whatever the file's rate
# and channel count (8 channels at 655 kHz once took 2.2 GB a block). 16 MB of float32.
MAX_BLOCK_SAMPLES = 1 << 22


def stream_audio(
    path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, block_seconds: float = 60.0
) -> Iterator[np.ndarray]:
    """Decode a file block by block: mono float32 blocks at `sample_rate`, about `block_seconds` each
    (fewer for many channels at a high rate: at most MAX_BLOCK_SAMPLES decoded samples a block).

    Memory stays bounded by the block, whatever the file's length. The blocks join into exactly
    what resampling the whole file would give: each block is read with enough context on both
    sides for the resampling filter, at offsets where input and output samples line up.
    """
    info = audio_info(path)
    rate = info.samplerate
    step_out, step_in = resampling_ratio(rate, sample_rate)  # step_in input samples -> step_out output
    largest = max(1, MAX_BLOCK_SAMPLES // (info.channels * step_in))
    block = step_in * max(1, min(largest, round(block_seconds * rate / step_in)))
    reach = 256 + 12 * step_in // step_out  # input samples either side: more than either resampler's filter
    context = 0 if rate == sample_rate else step_in * math.ceil(reach / step_in)
    decoded = 0
    try:
        with sound_file(path) as f:
            for start in range(0, info.frames, block):
                first = max(0, start - context)
                f.seek(first)
                data = f.read(min(info.frames, start + block + context) - first, dtype="float32", always_2d=True)
                decoded = max(decoded, first + len(data))
                mono = prepare_waveform(data.mean(axis=1), rate, sample_rate, source=path)  # (samples,)
                skip = (start - first) // step_in * step_out
                keep = math.ceil(min(block, info.frames - start) * step_out / step_in)
                yield mono[skip : skip + keep]
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioLoadError(path, f"corrupt or truncated audio data ({err})") from None
    if decoded < info.frames and info.subtype not in LENGTH_ESTIMATED:
        raise AudioLoadError(path, f"truncated: header says {info.frames} frames, only {decoded} decoded")


def load_excerpt(path: str | os.PathLike, start: float, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`seconds` of a file from `start` (fewer at its end), mono float32 at `sample_rate`, without
    decoding the rest: for listening to one part of a long file."""
    info = audio_info(path)
    try:
        with sound_file(path) as f:
            f.seek(min(info.frames, max(0, round(start * info.samplerate))))
            data = f.read(round(seconds * info.samplerate), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioLoadError(path, f"corrupt or truncated audio data ({err})") from None
    return prepare_waveform(data.mean(axis=1), info.samplerate, sample_rate, source=path)  # (samples,)


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
    check_rate(sample_rate, source)
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioLoadError(
            source,
            f"expected a mono waveform of shape (samples,), got shape {audio.shape}; "
            "average the channels first, e.g. audio.mean(axis=0)",
        )
    audio = _to_float32(audio, source)
    if audio.size == 0:
        raise AudioLoadError(source, "zero samples")
    if not np.isfinite(audio).all():
        raise AudioLoadError(source, f"{int((~np.isfinite(audio)).sum())} samples are NaN or infinite")
    if sample_rate != target_rate:
        audio = resample(audio, int(sample_rate), target_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


# The resampling filter has a phase per output sample of its period: 8000 for 22,254 Hz (exact), but
# 16,000 for an odd rate like 383,999 Hz, whose exact filter would hold 7.7 M taps. Past this many
# the ratio is approximated (a speed error under 1e-8), so the filter stays under 1 M taps.
MAX_RESAMPLING_PERIOD = 16000


def resampling_ratio(rate: int, target_rate: int) -> tuple[int, int]:
    """(up, down): every `down` input samples make `up` output samples; the exact reduced ratio, or
    the nearest with both at most MAX_RESAMPLING_PERIOD when the exact one is longer."""
    common = math.gcd(rate, target_rate)
    up, down = target_rate // common, rate // common
    if max(up, down) > MAX_RESAMPLING_PERIOD:
        ratio = Fraction(target_rate, rate).limit_denominator(MAX_RESAMPLING_PERIOD)
        up, down = max(1, ratio.numerator), ratio.denominator
    return up, down


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """torchaudio's sinc resampling; for an odd rate (22254 Hz: 8000 output phases, where torchaudio
    builds a kernel of 8000 x 11145 taps, seconds per clip) scipy's polyphase filter instead."""
    up, down = resampling_ratio(rate, target_rate)
    if up > 1000:  # every common rate (8, 11.025, 22.05, 32, 44.1, 48, 88.2, 96 kHz) has at most 640
        from scipy.signal import resample_poly

        return resample_poly(audio, up, down).astype(np.float32)
    return sinc_resampler(down, up)(torch.from_numpy(audio)).numpy()


@functools.lru_cache(maxsize=16)
def sinc_resampler(rate: int, target_rate: int) -> T.Resample:
    """torchaudio's resampler, its kernel built once per pair of rates rather than at every call
    (torchaudio.functional.resample builds it anew: a third of the time for a 10-s file)."""
    return T.Resample(rate, target_rate, dtype=torch.float32)  # the kernel functional.resample builds for float32


def _to_float32(audio: np.ndarray, source) -> np.ndarray:
    if np.issubdtype(audio.dtype, np.floating):
        return audio.astype(np.float32, copy=False)
    if audio.dtype in (np.int16, np.int32):
        return audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    raise AudioLoadError(source, f"unsupported sample type {audio.dtype}; use float32 in [-1, 1] or int16")


def cut(waveform: np.ndarray | torch.Tensor, size: int, hop: int, count: int) -> torch.Tensor:
    """`count` windows of `size` samples starting every `hop` along the last axis, zero-padded past
    the end: (..., count, size), a view of the padded waveform (copy it to keep only the windows)."""
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    missing = (count - 1) * hop + size - waveform.shape[-1]
    padded = torch.nn.functional.pad(waveform, (0, max(0, missing)))
    return padded.unfold(-1, size, hop)[..., :count, :]


def chunk(waveform: np.ndarray | torch.Tensor, config: DiverseEmbedConfig) -> tuple[torch.Tensor, np.ndarray]:
    """Cut a waveform (samples,) into the model's input for each of the config's chunks
    (n_chunks, window_samples): the chunk with its context on both sides, zeros past the clip
    (window_samples is chunk_samples without context); and the chunks' start times in seconds (n_chunks,)."""
    n = config.num_chunks(len(waveform))
    padded = with_context(waveform, config)
    chunks = cut(padded, config.window_samples, config.hop_samples, n).contiguous()  # (n_chunks, window_samples)
    return chunks, np.array(config.chunk_spans(len(waveform))[0], dtype=np.float64)


def blocks(waveform: np.ndarray | torch.Tensor, config: DiverseEmbedConfig) -> list[tuple[torch.Tensor, int]]:
    """The neuralogram's blocks of a clip (samples,): config.block_chunks of its chunks a block, each
    block's audio the span of its chunks' windows, (m - 1) * hop + window_samples samples (the
    context zeros before the clip and past its end), with its chunk count m."""
    n_chunks, size, hop = config.num_chunks(len(waveform)), config.block_chunks, config.hop_samples
    padded = with_context(waveform, config)
    spans = [(first, min(size, n_chunks - first)) for first in range(0, n_chunks, size)]
    return [(cut(padded[first * hop :], (m - 1) * hop + config.window_samples, hop, 1)[0], m) for first, m in spans]


def joined_blocks(windows: torch.Tensor, hop: int, size: int) -> list[tuple[torch.Tensor, int]]:
    """`blocks` from a clip's windows (n, window_samples), in order, `hop` samples apart, the first
    a block's first: windows overlap (hop <= window_samples), so a block's audio is its windows joined."""
    return [(torch.cat([part[:-1, :hop].reshape(-1), part[-1]]), len(part)) for part in windows.split(size)]


def with_context(waveform: np.ndarray | torch.Tensor, config: DiverseEmbedConfig) -> torch.Tensor:
    """The waveform (..., samples) after config.context_samples zeros: its windows cut every hop
    are then centred on the chunks (the zeros past the end `cut` adds)."""
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    return torch.nn.functional.pad(waveform, (config.context_samples, 0)) if config.context_samples else waveform


def centred_windows(waveform: np.ndarray, config: DiverseEmbedConfig, rate: int, window_samples: int) -> np.ndarray:
    """A clip at config.sample_rate (samples,) -> (n_chunks, window_samples) float32 at `rate`: for
    each of its chunks, the window of that length centred on the chunk's centre, zeros past the
    clip: what a teacher with its own context (BirdNET's 3 s) hears around each chunk."""
    audio = np.asarray(waveform, dtype=np.float32)
    if rate != config.sample_rate:
        audio = resample(audio, config.sample_rate, rate)
    centres = (np.array(config.chunk_starts(len(waveform))) + config.chunk_samples / 2) / config.sample_rate
    starts = np.round(centres * rate).astype(int) - window_samples // 2
    # A last chunk's centre may lie up to half a chunk past the clip: pad a window and a chunk each side.
    pad = window_samples + round(config.chunk_samples * rate / config.sample_rate)
    padded = np.pad(audio, (pad, pad))  # every window inside: zeros past the clip
    return np.stack([padded[s + pad : s + pad + window_samples] for s in starts])
