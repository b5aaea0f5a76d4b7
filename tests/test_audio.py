import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import sine, write_wav
from diverse_embed.audio import AudioLoadError, chunk, cut, load_audio, prepare_waveform
from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.files import find_audio_files

CONFIG = DiverseEmbedConfig()


def test_load_16k_mono_keeps_the_samples(tmp_path):
    data = sine(440, 1.0)
    path = write_wav(tmp_path / "a.wav", data)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32 and loaded.shape == (16000,)
    np.testing.assert_allclose(loaded, data, atol=1 / 32768)


def test_stereo_is_averaged_not_concatenated(tmp_path):
    left, right = sine(440, 1.0), sine(1000, 1.0, amplitude=0.25)
    path = write_wav(tmp_path / "stereo.flac", np.stack([left, right], axis=1))
    loaded = load_audio(path)
    assert loaded.shape == (16000,)
    np.testing.assert_allclose(loaded, (left + right) / 2, atol=2 / 32768)


@pytest.mark.parametrize("rate", [44100, 22254])  # 22254 Hz: an odd rate, resampled by scipy's polyphase filter
def test_resampling_keeps_duration_and_pitch(tmp_path, rate):
    path = write_wav(tmp_path / "cd.wav", sine(1000, 2.0, rate=rate), rate=rate)
    loaded = load_audio(path)
    assert abs(len(loaded) - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(loaded))
    assert abs(np.argmax(spectrum) * 16000 / len(loaded) - 1000) < 2


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, "no such file"),
        (lambda p: p.write_bytes(b"") and p, "empty file"),
        (lambda p: p.write_text("this is not audio\n" * 50) and p, "not readable as audio"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)) and p, "not readable as audio"),
    ],
    ids=["missing", "zero-bytes", "text", "png"],
)
def test_unreadable_files_name_the_file(tmp_path, make, reason):
    path = tmp_path / "bad file.wav"
    make(path)
    with pytest.raises(AudioLoadError, match=reason) as err:
        load_audio(path)
    assert str(path) in str(err.value) and err.value.source == str(path)


def test_zero_samples(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioLoadError, match="zero samples"):
        load_audio(path)


def test_nan_samples(tmp_path):
    data = sine(440, 0.5)
    data[100] = np.nan
    path = write_wav(tmp_path / "nan.wav", data, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match="NaN"):
        load_audio(path)


def test_truncated_wav(tmp_path):
    path = write_wav(tmp_path / "cut.wav", sine(440, 1.0))
    path.write_bytes(path.read_bytes()[:20000])  # header declares 32000 bytes of data
    with pytest.raises(AudioLoadError, match="truncated") as err:
        load_audio(path)
    assert "cut.wav" in str(err.value)


def test_mp3_length_is_what_the_decoder_gives(tmp_path):
    # libsndfile's MP3 frame count is an estimate (from the bit rate or a Xing header) that real
    # files miss by a few percent: an MP3 is read to where decoding ends, not refused as truncated.
    import soundfile as sf

    path = tmp_path / "note.mp3"
    sf.write(path, sine(440, 3.0, rate=44100, amplitude=0.3), 44100, format="MP3")
    assert abs(len(load_audio(path)) - 48000) < 1600
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])  # the header still says 3 s
    assert sf.info(str(path)).frames == 3 * 44100
    assert 24000 < len(load_audio(path)) < 40000


def test_prepare_waveform_validates_arrays():
    good = sine(440, 0.5)
    with pytest.raises(AudioLoadError, match="sample_rate is required"):
        prepare_waveform(good, None)
    with pytest.raises(AudioLoadError, match="positive integer"):
        prepare_waveform(good, -5)
    with pytest.raises(AudioLoadError, match=r"shape \(2, 8000\)"):
        prepare_waveform(np.stack([good, good]), 16000)
    with pytest.raises(AudioLoadError, match="unsupported sample type"):
        prepare_waveform(good.astype(np.complex64), 16000)
    with pytest.raises(AudioLoadError, match="zero samples"):
        prepare_waveform(np.zeros(0, np.float32), 16000)
    bad = good.copy()
    bad[3] = np.inf
    with pytest.raises(AudioLoadError, match="1 samples are NaN or infinite"):
        prepare_waveform(bad, 16000)


def test_prepare_waveform_accepts_int16_and_tensors():
    pcm = (sine(440, 0.5) * 32767).astype(np.int16)
    np.testing.assert_allclose(prepare_waveform(pcm, 16000), pcm / 32768.0, atol=1e-7)
    tensor = torch.from_numpy(sine(440, 0.5)).double()
    assert prepare_waveform(tensor, 16000).dtype == np.float32
    assert len(prepare_waveform(sine(440, 1.0, rate=48000), 48000)) == 16000


@pytest.mark.parametrize("seconds, expected", [(0.3, 1), (1.0, 1), (3.7, 4), (60.0, 60)])
def test_chunk_shapes(seconds, expected):
    wave = sine(440, seconds)
    chunks, starts = chunk(wave, CONFIG)
    assert chunks.shape == (expected, CONFIG.chunk_samples)
    np.testing.assert_allclose(starts, np.arange(expected, dtype=float))
    # The audio comes back in order and the padding is zeros.
    flat = chunks.reshape(-1).numpy()
    np.testing.assert_array_equal(flat[: len(wave)], wave)
    assert not flat[len(wave) :].any()


def test_chunk_hop_and_tiny_leftover():
    chunks, starts = chunk(sine(440, 3.0), DiverseEmbedConfig(hop_seconds=0.5))
    assert chunks.shape == (5, CONFIG.chunk_samples)
    np.testing.assert_allclose(starts, [0, 0.5, 1.0, 1.5, 2.0])
    # ESC-50 clips hold 80001 samples: the lone last sample does not make a sixth chunk.
    assert CONFIG.num_chunks(80001) == 5
    assert DiverseEmbedConfig(min_final_chunk_seconds=0).num_chunks(80001) == 6
    assert CONFIG.num_chunks(100) == 1


def test_cut_pads_and_stops_at_count():
    windows = cut(torch.arange(1, 8).float(), size=4, hop=2, count=4)  # (4, 4): past the end is zeros
    assert windows.tolist() == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 0], [7, 0, 0, 0]]
    assert cut(torch.arange(1, 8).float(), size=4, hop=2, count=1).tolist() == [[1, 2, 3, 4]]


def test_find_audio_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.wav", "sub/a.FLAC", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    found = find_audio_files([tmp_path])
    assert [p.name for p in found] == ["b.wav", "a.FLAC"]


# 383,999 Hz: its exact filter would hold 7.7 M taps, so the ratio is approximated (resampling_ratio)
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 22254, 44100, 48000, 96000, 383_999])
def test_streamed_blocks_join_into_whole_file_resampling(tmp_path, rate):
    from diverse_embed.audio import resample

    rng = np.random.default_rng(rate)
    left = (rng.standard_normal(int(rate * 3.3)) * 0.1).astype(np.float32)
    right = (rng.standard_normal(len(left)) * 0.1).astype(np.float32)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), rate=rate, subtype="FLOAT")
    mono = torch.from_numpy((left + right) / 2)
    whole = mono.numpy() if rate == 16000 else resample(mono.numpy(), rate, 16000)
    from diverse_embed.audio import stream_audio

    blocks = list(stream_audio(path, block_seconds=1.0))
    assert len(blocks) == 4 and all(len(b) <= 16000 for b in blocks)
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-6)


def test_many_channels_at_a_high_rate_are_decoded_in_bounded_blocks_that_still_join(tmp_path, monkeypatch):
    from diverse_embed import audio

    rate, channels = 655_350, 8  # once 2.2 GB a block
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((int(rate * 0.4), channels)) * 0.1).astype(np.float32)
    path = write_wav(tmp_path / "many.wav", data, rate=rate, subtype="FLOAT")
    whole = audio.resample(data.mean(axis=1), rate, 16000)
    monkeypatch.setattr(audio, "MAX_BLOCK_SAMPLES", 1 << 18)  # 32,768 frames of 8 channels a block
    reads = []
    read = sf.SoundFile.read
    monkeypatch.setattr(
        sf.SoundFile, "read", lambda self, frames=-1, **kw: reads.append(frames) or read(self, frames, **kw)
    )
    joined = np.concatenate(list(audio.stream_audio(path)))
    context = 2 * channels * audio.MAX_RESAMPLING_PERIOD  # at most a resampling period either side
    assert len(reads) > 4 and max(reads) * channels <= (1 << 18) + context
    np.testing.assert_allclose(joined, whole, atol=1e-6)


def test_sample_rates_no_converter_makes_are_refused_before_resampling():
    from diverse_embed.audio import AudioLoadError, prepare_waveform

    with pytest.raises(AudioLoadError, match="sample rate 1,000,000,000,000 Hz is above 768,000 Hz"):
        prepare_waveform(np.zeros(16000, np.float32), 10**12, 16000, source="x")


@pytest.mark.parametrize("window, rate", [(12640, 16000), (4000, 16000), (144000, 48000)])
def test_centred_windows_fit_a_last_chunk_that_barely_counts(window, rate):
    """A last chunk holding just over min_final_chunk_seconds has its centre almost half a chunk past
    the clip: a teacher's window centred there is still whole, zeros past the clip."""
    from diverse_embed.audio import centred_windows
    from diverse_embed.config import DiverseEmbedConfig

    config = DiverseEmbedConfig()
    audio = np.ones(16000 + 1700, np.float32)  # the second chunk holds 1700 samples (>= 1600)
    windows = centred_windows(audio, config, rate, window)  # (2, window)
    assert windows.shape == (2, window)
    centre = round(1.5 * rate)  # the second chunk's centre, in samples at `rate`
    first = centre - window // 2
    heard, end = np.arange(first, first + window), round(len(audio) * rate / 16000)  # positions at `rate`
    inside = (heard >= 100) & (heard < end - 100)  # the clip, away from resampling's ringing at its edges
    assert (np.abs(windows[1][inside] - 1) < 0.05).all()  # (none of it for the short windows)
    assert not windows[1][heard >= end + 100].any()  # zeros past the clip
