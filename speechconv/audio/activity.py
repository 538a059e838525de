"""Where a recording is active: the one energy rule behind trimming silence, finding the end of speech in a
clip and the active-speech power of an SNR reference.

A frame is active when its mean power lies within ``threshold_db`` of the loudest frame's (``threshold_db``
is negative: -40 means "at most 40 dB below"). numpy only.
"""

from __future__ import annotations

import numpy as np


def frame_power(samples: np.ndarray, frame: int) -> np.ndarray:
    """Mean power of consecutive ``frame``-sample frames over all leading axes (float64, ``(n_frames,)``).
    A trailing partial frame is dropped, except that audio shorter than one frame is one zero-padded frame."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1, np.shape(samples)[-1])
    n = x.shape[-1] // frame
    if n == 0:
        x, n = np.pad(x, ((0, 0), (0, frame - x.shape[-1]))), 1
    return (x[:, : n * frame].reshape(x.shape[0], n, frame) ** 2).mean(axis=(0, 2))


def active_frames(power: np.ndarray, threshold_db: float) -> np.ndarray:
    """Mask of the frames within ``threshold_db`` (<= 0) of the loudest; all False when everything is silent."""
    peak = float(power.max()) if len(power) else 0.0
    if peak <= 0.0:
        return np.zeros(len(power), dtype=bool)
    return power >= peak * 10.0 ** (threshold_db / 10.0)


def active_span(samples: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                frame_s: float = 0.01) -> tuple[int, int] | None:
    """``(start, end)`` samples from the first to the end of the last active frame; None when silent."""
    frame = max(1, int(round(frame_s * sample_rate)))
    if np.shape(samples)[-1] < frame:
        return None
    active = np.flatnonzero(active_frames(frame_power(samples, frame), threshold_db))
    if not len(active):
        return None
    return int(active[0]) * frame, (int(active[-1]) + 1) * frame


def active_power(samples: np.ndarray, sample_rate: int, threshold_db: float = -30.0, frame_s: float = 0.02) -> float:
    """Mean power over the active frames: a simple stand-in for ITU-T P.56 active speech level."""
    power = frame_power(samples, max(1, int(frame_s * sample_rate)))
    active = active_frames(power, threshold_db)
    return float(power[active].mean()) if active.any() else 0.0
