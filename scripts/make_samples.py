"""Write the sample sounds shipped in diverse_embed/samples/ (all synthetic, made here, public domain).

Pairs of related sounds, so a query by one should find its partner first:
tones, harmonic notes, sweeps, hiss, rumble, clicks and noise bursts.

    python scripts/make_samples.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SECONDS = 2.0
OUT = Path(__file__).resolve().parent.parent / "diverse_embed" / "samples"


def envelope(n: int) -> np.ndarray:
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.02 * RATE))  # 20 ms fades
    return ramp


def tone(freq: float, harmonics: int = 1) -> np.ndarray:
    t = np.arange(int(SECONDS * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))
    return wave / np.abs(wave).max()


def sweep(f0: float, f1: float) -> np.ndarray:
    t = np.arange(int(SECONDS * RATE)) / RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * SECONDS))
    return np.sin(phase)


def noise(rng: np.random.Generator, colour: str) -> np.ndarray:
    white = rng.standard_normal(int(SECONDS * RATE))
    if colour == "white":
        return white / np.abs(white).max()
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove the drift
    return brown / np.abs(brown).max()


def clicks(rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(SECONDS * RATE))
    click = rng.standard_normal(80) * np.exp(-np.arange(80) / 10)
    for start in np.arange(0, len(out) - 80, int(RATE / rate_hz)):
        out[start : start + 80] += click
    return out / np.abs(out).max()


def bursts(rng: np.random.Generator) -> np.ndarray:
    out = noise(rng, "white")
    gate = (np.arange(len(out)) // int(0.25 * RATE)) % 2 == 0  # 250 ms on, 250 ms off
    return out * gate


def main() -> None:
    rng = np.random.default_rng(2026)
    sounds = {
        "tone_440hz": tone(440.0),
        "tone_660hz": tone(660.0),
        "note_220hz_harmonic": tone(220.0, harmonics=8),
        "note_330hz_harmonic": tone(330.0, harmonics=8),
        "sweep_up": sweep(200.0, 4000.0),
        "sweep_down": sweep(4000.0, 200.0),
        "hiss_white_noise": noise(rng, "white"),
        "rumble_brown_noise": noise(rng, "brown"),
        "clicks_4_per_second": clicks(4.0, rng),
        "clicks_8_per_second": clicks(8.0, rng),
        "noise_bursts": bursts(rng),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for name, wave in sounds.items():
        wave = 0.5 * wave * envelope(len(wave))
        sf.write(OUT / f"{name}.wav", wave.astype(np.float32), RATE, subtype="PCM_16")
        print(OUT / f"{name}.wav")


if __name__ == "__main__":
    main()
