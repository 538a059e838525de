"""Generated background noise, for training and evaluating a detector without any noise recordings.

Each kind is unit-RMS float32 audio:

- ``white``, ``pink`` (1/f power), ``brown`` (1/f^2 power): coloured noise shaped in the frequency domain;
- ``hum``: mains hum (50 or 60 Hz with harmonics) over weak pink noise;
- ``fan``: low-passed noise whose level wobbles slowly, like a fan or an air conditioner;
- ``babble``: several speech clips summed at random offsets (the voices of a crowd), from clips you give.

Real noise recordings are better; these only keep a detector from meeting its first noise in use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

KINDS = ("white", "pink", "brown", "hum", "fan", "babble")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / max(float(np.sqrt(np.mean(x**2))), 1e-12)).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with power spectrum ``1 / f**exponent`` (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 2 else 1.0
    return _unit_rms(np.fft.irfft(spectrum / f ** (exponent / 2), n))


def hum(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sample_rate
    mains = rng.choice([50.0, 60.0])
    tone = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 4))
    return _unit_rms(_unit_rms(tone) + 0.3 * coloured_noise(n, 1.0, rng))


def fan(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    cutoff = rng.uniform(300.0, 1500.0)
    noise = np.fft.irfft(spectrum / np.sqrt(1 + (f / cutoff) ** 4), n)
    t = np.arange(n) / sample_rate
    wobble = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    return _unit_rms(noise * wobble)


def babble(n: int, clips: Sequence[np.ndarray], rng: np.random.Generator, voices: int = 6) -> np.ndarray:
    """``voices`` tracks, each a random sequence of ``clips`` (unit RMS), summed."""
    if not clips:
        raise ValueError("babble needs speech clips")
    out = np.zeros(n)
    for _ in range(voices):
        track, pos = np.zeros(n), int(rng.integers(0, max(1, n // 4)))
        while pos < n:
            clip = clips[int(rng.integers(len(clips)))]
            piece = clip[: n - pos] / max(float(np.sqrt(np.mean(clip**2))), 1e-9)
            track[pos:pos + len(piece)] += piece
            pos += len(piece) + int(rng.integers(0, len(clip) // 4 + 1))
        out += track
    return _unit_rms(out)


def generate(kind: str, seconds: float, sample_rate: int, rng: np.random.Generator,
             clips: Sequence[np.ndarray] = ()) -> np.ndarray:
    """``seconds`` of noise of one of :data:`KINDS`."""
    n = int(round(seconds * sample_rate))
    if kind == "white":
        return coloured_noise(n, 0.0, rng)
    if kind == "pink":
        return coloured_noise(n, 1.0, rng)
    if kind == "brown":
        return coloured_noise(n, 2.0, rng)
    if kind == "hum":
        return hum(n, sample_rate, rng)
    if kind == "fan":
        return fan(n, sample_rate, rng)
    if kind == "babble":
        return babble(n, clips, rng)
    raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(KINDS)}")


def write_noise_set(folder: str | os.PathLike, seconds: float = 60.0, sample_rate: int = 16000, seed: int = 0,
                    babble_clips: Sequence[np.ndarray] = (), prefix: str = "") -> list[str]:
    """One WAV per kind in ``folder`` (``babble`` only when clips are given); returns the paths.
    Files that exist are kept, so a rerun writes nothing new."""
    from speechconv.audio import save_audio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, kind in enumerate(KINDS):
        if kind == "babble" and not babble_clips:
            continue
        path = folder / f"{prefix}{kind}.wav"
        if not path.is_file():
            audio = 0.1 * generate(kind, seconds, sample_rate, np.random.default_rng([seed, i]), babble_clips)
            save_audio(path, audio, sample_rate)
        paths.append(str(path))
    return paths
