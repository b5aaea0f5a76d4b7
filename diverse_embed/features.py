"""The four front ends, each a module from 1-s chunks (batch, samples) to a frame sequence.

| branch      | output shape                 | frame rate (the model's default, `frame_hop_ms`) |
|-------------|------------------------------|--------------------------------------------------|
| pitch       | (batch, frames, bins) binary | 25 ms                                            |
| timbre      | (batch, frames, n_mfcc)      | 25 ms, 50-ms windows                             |
| waveform    | (batch, patches, patch)      | 25 ms, non-overlapping                           |
| neuralogram | log-mel (batch, frames, mels), fed to the MobileNet in `neuralogram.py` | 25 ms, 50-ms windows |

Each is built from the model's config (no defaults of its own to drift from it). Computed buffers
(windows, filter banks) are not saved in checkpoints: they follow from the config, and saving them
would tie checkpoints to torchaudio's internal names.

All of them work on each chunk alone, so a chunk's features never depend on its batch.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import nn

from .config import DiverseEmbedConfig
from .precision import front_end_precision


def not_saved(module: nn.Module) -> nn.Module:
    """Mark every buffer of `module` and its children non-persistent (left out of state_dict)."""
    for sub in module.modules():
        sub._non_persistent_buffers_set.update(sub._buffers)
    return module


class PowerSpectrogram(nn.Module):
    """A torchaudio Spectrogram with its STFT in `dtype` and its power as re^2 + im^2; a power
    spectrum comes back in float32, a complex one (power None) as it is (its user takes the power).

    re^2 + im^2 rather than torchaudio's |X|^power: complex abs is an overflow-safe hypot, several
    times slower than the rest of the STFT, and the two agree to rounding (2e-16 in float64).
    float64 for the log-mel: float32 FFTs of different libraries (torch's on CPU, cuFFT,
    onnxruntime's for the ONNX export) disagree in the quietest bins, and the log-mel's logarithm
    magnifies that; in float64 they agree. The spectral peaks' and the MFCCs' stay in float32 (in
    float64 they would cost a quarter of the model's time); the ONNX export computes all three so.
    """

    def __init__(self, spectrogram: T.Spectrogram, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.spectrogram, self.dtype = spectrogram, dtype

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        s = self.spectrogram  # its window cast here: a model moved to another dtype keeps working
        spectrum = AF.spectrogram(
            waveform.to(self.dtype),
            s.pad,
            s.window.to(self.dtype),
            s.n_fft,
            s.hop_length,
            s.win_length,
            None,  # complex: the power is taken below
            s.normalized,
            s.center,
            s.pad_mode,
            s.onesided,
        )
        if s.power is None:
            return spectrum
        power = spectrum.real.square() + spectrum.imag.square()
        if s.power == 1.0:
            power = power.sqrt()
        elif s.power != 2.0:
            power = power.pow(s.power / 2.0)
        return power.float()


def spectrograms_in(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Every torchaudio Spectrogram inside `module` (a MelSpectrogram's, an MFCC's) made a
    PowerSpectrogram, and every PowerSpectrogram's STFT run in `dtype`."""
    for parent in list(module.modules()):
        if isinstance(parent, PowerSpectrogram):
            parent.dtype = dtype
            continue
        for name, child in parent.named_children():
            if isinstance(child, T.Spectrogram) and not isinstance(parent, PowerSpectrogram):
                setattr(parent, name, PowerSpectrogram(child, dtype))
    return module


def stft_in_float64(module: nn.Module) -> nn.Module:
    """Every STFT inside `module` run in float64 (the ONNX export's graph)."""
    return spectrograms_in(module, torch.float64)


class SpectralPeaks(nn.Module):
    """Binary map of spectral peaks per frame, on a limited-range linear STFT axis.

    Why a long linear STFT and not a log axis: a 2048-point window (128 ms) resolves 7.8 Hz,
    enough to separate neighbouring semitones above ~130 Hz, and a peak in bin k means
    "energy at k * 7.8 Hz" exactly, with no interpolation smearing peaks across log bins.
    Only bins between `fmin_hz` and `fmax_hz` are kept: the range where pitch lives.

    A bin is a peak when it is a local maximum of the magnitude spectrum, within
    `threshold_db` of the loudest bin of its frame, above an absolute floor of `floor_dbfs`
    (so silence has no peaks), and among the `max_peaks` largest peaks of the frame.
    """

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        pitch = config.pitch
        # Complex output: only the kept bins (and their two neighbours) are turned into power.
        self.spectrogram = PowerSpectrogram(
            T.Spectrogram(n_fft=pitch.n_fft, hop_length=config.frame_hop_samples, power=None, center=True)
        )
        all_frequencies = torch.fft.rfftfreq(pitch.n_fft, d=1.0 / config.sample_rate)
        kept = ((all_frequencies >= pitch.fmin_hz) & (all_frequencies <= pitch.fmax_hz)).nonzero().flatten()
        self.first_bin, self.last_bin = int(kept[0]), int(kept[-1]) + 1
        self.register_buffer("frequencies", all_frequencies[self.first_bin : self.last_bin])
        self.max_peaks = pitch.max_peaks
        # Both tests run on power (|X|^2, monotonic in |X|, and no square root), hence the squares.
        self.power_threshold = 10.0 ** (pitch.threshold_db / 10.0)
        # A full-scale sine under a Hann window peaks at n_fft / 4 in magnitude.
        self.power_floor = (10.0 ** (pitch.floor_dbfs / 20.0) * pitch.n_fft / 4.0) ** 2
        not_saved(self)

    @property
    def num_bins(self) -> int:
        return self.last_bin - self.first_bin

    @front_end_precision
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform: (batch, samples) -> peaks: (batch, frames, bins) of 0.0 / 1.0."""
        spectrum = self.spectrogram(waveform).transpose(1, 2)  # (B, frames, all_bins) complex
        # The kept bins plus one neighbour each side (where there is one), for the local-maximum test.
        low, high = max(self.first_bin - 1, 0), min(self.last_bin + 1, spectrum.shape[-1])
        kept = spectrum[..., low:high]
        # float32 whatever the STFT ran in (the ONNX export runs it in float64)
        power = (kept.real.square() + kept.imag.square()).float()  # (B, frames, high - low)
        centre = power[..., 1:-1]
        # Strict on the left, loose on the right: a two-bin plateau counts once.
        is_peak = (centre > power[..., :-2]) & (centre >= power[..., 2:])
        start = self.first_bin - low
        is_peak = nn.functional.pad(is_peak, (1, 1))[..., start : start + self.num_bins]
        power = power[..., start : start + self.num_bins]  # (B, frames, bins)
        loudest = power.amax(dim=-1, keepdim=True)
        is_peak &= (power >= loudest * self.power_threshold) & (power > self.power_floor)
        peak_power = torch.where(is_peak, power, torch.zeros_like(power))
        top_values, top_bins = peak_power.topk(min(self.max_peaks, self.num_bins), dim=-1)
        peaks = torch.zeros_like(power)
        return peaks.scatter_(-1, top_bins, (top_values > 0).to(peaks.dtype))


class MFCCFrames(nn.Module):
    """MFCCs per frame through torchaudio.transforms.MFCC: (batch, samples) -> (batch, frames, n_mfcc)."""

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        timbre = config.timbre
        self.mfcc = spectrograms_in(
            T.MFCC(
                sample_rate=config.sample_rate,
                n_mfcc=timbre.n_mfcc,
                melkwargs={
                    "n_fft": config.samples(timbre.window_ms),
                    "hop_length": config.frame_hop_samples,
                    "n_mels": timbre.n_mels,
                },
            ),
            torch.float32,
        )
        not_saved(self)

    @front_end_precision
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # The (batch, 1, samples) shape matters: torchaudio's top_db clamp takes its maximum over
        # the last three dimensions, so (batch, samples) would clamp every clip by the loudest one.
        mfcc = self.mfcc(waveform.unsqueeze(1)).squeeze(1)  # (B, n_mfcc, frames)
        return mfcc.transpose(1, 2)  # (B, frames, n_mfcc)


class WaveformPatches(nn.Module):
    """Raw waveform cut into non-overlapping patches: (batch, samples) -> (batch, patches, patch_samples)."""

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        self.patch_samples = config.waveform_patch_samples

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        batch, samples = waveform.shape
        if samples % self.patch_samples:
            raise ValueError(f"chunk of {samples} samples is not a whole number of {self.patch_samples}-sample patches")
        return waveform.reshape(batch, samples // self.patch_samples, self.patch_samples)


class LogMel(nn.Module):
    """YAMNet-style log-mel frames for the MobileNet: (batch, samples) -> (batch, frames, n_mels).

    Magnitude (not power) mel spectrogram, log(mel + 0.001), as YAMNet computes its input.
    """

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        settings = config.neuralogram
        window = config.samples(settings.window_ms)
        self.mel = spectrograms_in(
            T.MelSpectrogram(
                sample_rate=config.sample_rate,
                n_fft=1 << (window - 1).bit_length(),  # the next power of two above the window
                win_length=window,
                hop_length=config.frame_hop_samples,
                f_min=settings.fmin_hz,
                f_max=settings.fmax_hz,
                n_mels=settings.mel_bins,
                power=1.0,
            ),
            torch.float64,
        )
        not_saved(self)

    @front_end_precision
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(waveform) + 1e-3).transpose(1, 2)  # (B, frames, n_mels)
