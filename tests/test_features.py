import numpy as np
import pytest
import torch
import torchaudio

from conftest import sine
from diverse_embed.config import DiverseEmbedConfig, PitchConfig
from diverse_embed.features import LogMel, MFCCFrames, SpectralPeaks, WaveformPatches
from diverse_embed.neuralogram import MobileNetV1

# 10-ms frames, 25-ms windows: torchaudio's and YAMNet's usual settings, so the references are plain.
TEN_MS = DiverseEmbedConfig(frame_hop_ms=10.0)
TEN_MS.timbre.window_ms = TEN_MS.neuralogram.window_ms = 25.0


def test_440hz_sine_peaks_in_the_440hz_bin():
    peaks_of = SpectralPeaks(TEN_MS)
    peaks = peaks_of(torch.from_numpy(sine(440, 1.0)).unsqueeze(0))  # (1, frames, bins)
    assert peaks.shape == (1, 101, peaks_of.num_bins)
    assert set(peaks.unique().tolist()) <= {0.0, 1.0}
    bin_440 = int(torch.argmin((peaks_of.frequencies - 440).abs()))
    # Every frame whose window lies inside the tone has exactly one peak, at 440 Hz.
    inner = peaks[0, 10:-10]
    assert (inner[:, bin_440] == 1).all()
    assert (inner.sum(dim=1) == 1).all()


def test_two_tones_give_two_peaks_and_silence_none():
    peaks_of = SpectralPeaks(TEN_MS)
    chord = torch.from_numpy(sine(300, 1.0) + sine(1200, 1.0, amplitude=0.3)).unsqueeze(0)
    frame = peaks_of(chord)[0, 50]
    found = peaks_of.frequencies[frame.bool()]
    assert len(found) == 2 and abs(found[0] - 300) < 8 and abs(found[1] - 1200) < 8
    assert peaks_of(torch.zeros(1, 16000)).sum() == 0


def test_peaks_are_capped_per_frame():
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    peaks = SpectralPeaks(DiverseEmbedConfig(pitch=PitchConfig(max_peaks=5, threshold_db=-80)))(noise.unsqueeze(0))
    assert peaks.sum(dim=-1).max() == 5


def test_mfcc_equals_torchaudio_per_clip():
    loud = torch.from_numpy(sine(440, 1.0, amplitude=0.9))
    quiet = torch.from_numpy(np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 1e-3)
    reference = torchaudio.transforms.MFCC(
        sample_rate=16000, n_mfcc=12, melkwargs={"n_fft": 400, "hop_length": 160, "n_mels": 40}
    )
    batch = MFCCFrames(TEN_MS)(torch.stack([loud, quiet]))
    assert batch.shape == (2, 101, 12)
    for row, clip in zip(batch, [loud, quiet]):
        # Each clip alone, as torchaudio computes it: a quiet clip is not clamped by a loud neighbour.
        torch.testing.assert_close(row, reference(clip).T, rtol=1e-5, atol=1e-4)


def test_waveform_patches_reassemble():
    chunks = torch.randn(3, 16000)
    patches = WaveformPatches(DiverseEmbedConfig())(chunks)
    assert patches.shape == (3, 40, 400)
    torch.testing.assert_close(patches.reshape(3, -1), chunks, rtol=0, atol=0)
    with pytest.raises(ValueError, match="whole number"):
        WaveformPatches(DiverseEmbedConfig())(chunks[:, :15900])


def test_log_mel_and_mobilenet_shapes():
    log_mel = LogMel(TEN_MS)(torch.randn(2, 16000))
    assert log_mel.shape == (2, 101, 64) and torch.isfinite(log_mel).all()
    net = MobileNetV1(time_stride=8).eval()
    assert net(log_mel).shape == (2, 13, 1024)
    assert MobileNetV1(time_stride=32).eval()(log_mel).shape == (2, 4, 1024)
    with pytest.raises(ValueError, match="power of two"):
        MobileNetV1(time_stride=6)


def trained_looking_mobilenet() -> MobileNetV1:
    """A MobileNet whose batch norms hold non-trivial statistics and affine weights, as after training."""
    torch.manual_seed(0)
    net = MobileNetV1(time_stride=16)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    return net


def test_mobilenet_inference_folds_batch_norm_without_changing_its_output():
    net = trained_looking_mobilenet().eval()
    log_mel = LogMel(DiverseEmbedConfig())(0.1 * torch.randn(3, 16000))  # (3, 41, 64)
    with torch.no_grad():
        folded = net(log_mel)  # eval: batch norm folded into the convolutions
        layer_by_layer = net.layers(log_mel.unsqueeze(1)).mean(dim=3).transpose(1, 2)  # conv, batch norm, ReLU
    torch.testing.assert_close(folded, layer_by_layer, rtol=1e-4, atol=1e-5)


def test_gradients_reach_the_weights_through_the_folded_batch_norm():
    # Fine-tuning with frozen batch-norm statistics (eval mode) must still train the convolutions.
    net = trained_looking_mobilenet().eval()
    net(torch.randn(2, 41, 64)).sum().backward()
    first_conv, first_batch_norm = net.layers[0][0], net.layers[0][1]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert first_batch_norm.weight.grad is not None and first_batch_norm.bias.grad is not None


def test_features_are_finite_on_silence_and_clipping():
    extremes = torch.stack([torch.zeros(16000), torch.ones(16000), torch.sign(torch.randn(16000))])
    for front_end in [SpectralPeaks(TEN_MS), MFCCFrames(TEN_MS), LogMel(TEN_MS)]:
        assert torch.isfinite(front_end(extremes)).all()


def test_front_ends_follow_the_config():
    config = DiverseEmbedConfig()  # 25-ms frames, 50-ms windows
    chunk = torch.randn(1, 16000)
    assert (
        SpectralPeaks(config)(chunk).shape[1]
        == MFCCFrames(config)(chunk).shape[1]
        == LogMel(config)(chunk).shape[1]
        == 41
    )
    assert LogMel(config).mel.spectrogram.spectrogram.n_fft == 1024  # inside its PowerSpectrogram
    assert MFCCFrames(config).mfcc.MelSpectrogram.spectrogram.spectrogram.n_fft == 800
