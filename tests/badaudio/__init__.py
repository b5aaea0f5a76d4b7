"""A corpus of awkward audio files, generated on demand (never committed as binaries).

`make_corpus(folder)` writes every case into `folder` and returns them: each `Case` says what the
library must do with it: embed it (`ok`), or refuse it with an `AudioLoadError` whose message
names the file and contains `reason`. Tests run the whole corpus through `load_audio`,
`diverse-embed embed`, `diverse-embed index build` and training's data loading.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class Case:
    name: str  # file name inside the corpus folder
    ok: bool  # True: must embed; False: must be refused
    reason: str = ""  # for a refusal: a phrase of the error message
    seconds: float | None = None  # for an accepted file: its duration at 16 kHz (None: not checked)


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


def _wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    """A 16-bit mono PCM WAV header that announces `data_bytes` of data."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def make_corpus(folder: str | Path) -> list[Case]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def write(name: str, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", seconds=None, **kw):
        sf.write(folder / name, data, rate, subtype=subtype, **kw)
        cases.append(Case(name, True, seconds=seconds if seconds is not None else round(len(data) / rate, 3)))

    # Refused, with the reason named.
    (folder / "zero_bytes.wav").write_bytes(b"")
    cases.append(Case("zero_bytes.wav", False, "0 bytes"))
    (folder / "header_only.wav").write_bytes(_wav_header(0))
    cases.append(Case("header_only.wav", False, "zero samples"))
    pcm = (np.clip(_tone(1.0, 16000), -1, 1) * 32767).astype("<i2").tobytes()
    (folder / "truncated.wav").write_bytes(_wav_header(len(pcm)) + pcm[: len(pcm) // 2])
    cases.append(Case("truncated.wav", False, "truncated"))
    (folder / "text_named.wav").write_text("this is not audio\n" * 20)
    cases.append(Case("text_named.wav", False, "not readable as audio"))
    (folder / "picture_named.wav").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    cases.append(Case("picture_named.wav", False, "not readable as audio"))
    nan = _tone(1.0, 16000)
    nan[100] = np.nan
    sf.write(folder / "float_nan.wav", nan, 16000, subtype="FLOAT")
    cases.append(Case("float_nan.wav", False, "NaN or infinite"))
    inf = _tone(1.0, 16000)
    inf[100] = np.inf
    sf.write(folder / "float_inf.wav", inf, 16000, subtype="FLOAT")
    cases.append(Case("float_inf.wav", False, "NaN or infinite"))

    # Accepted: sample formats, levels, lengths, channels, rates, names.
    write("pcm_8bit.wav", _tone(1.0, 16000), subtype="PCM_U8")
    write("pcm_24bit.wav", _tone(1.0, 16000), subtype="PCM_24")
    write("float32.wav", _tone(1.0, 16000), subtype="FLOAT")
    write("clipping_full_scale.wav", np.sign(_tone(1.0, 16000)).astype(np.float32), subtype="FLOAT")
    write("dc_offset_only.wav", np.full(16000, 0.5, np.float32))
    write("one_sample.wav", np.array([0.25], np.float32))
    write("tenth_of_a_second.wav", _tone(0.1, 16000))
    for channels in (1, 2, 6):
        write(f"channels_{channels}.wav", _tone(1.5, 16000, channels), seconds=1.5)
    for rate in (8000, 22050, 44100, 48000, 96000):
        write(f"rate_{rate}.wav", _tone(1.2, rate), rate=rate, seconds=1.2)
    write("UPPER_CASE.WAV", _tone(1.0, 16000))
    write("upper_case_flac.FLAC", _tone(1.0, 16000), format="FLAC")
    write("name with spaces.wav", _tone(1.0, 16000))
    write("ünïcødé_名前.wav", _tone(1.0, 16000))
    return cases


def write_long_file(path: str | Path, hours: float, rate: int = 16000) -> Path:
    """A file of `hours` of quiet noise, written a minute at a time (never held whole)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(int(round(hours * 60))):
            f.write((0.05 * rng.standard_normal(rate * 60)).astype(np.float32))
    return Path(path)
