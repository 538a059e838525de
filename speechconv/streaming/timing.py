"""The one timing rule of speechconv streams: which second each output frame describes.

Pure arithmetic on the integers of :attr:`KeywordSpotter.frame_timing`, shared by the engine, training,
export metadata and any consumer of an exported step, so all of them compute bit-identical times.
"""

from __future__ import annotations

import numpy as np


def stream_times(timing: dict[str, int], frames: np.ndarray) -> np.ndarray:
    """Seconds from a stream's first sample described by its output frames ``frames``.

    Feature frame ``k`` covers samples ``[k * hop, k * hop + n_fft)`` of the stream *including* the
    ``warmup_samples`` of silence before it; output ``t`` (counted from the first output after the
    warm-up, ``warm_frames`` of them) sees feature frames up to ``offset + t * stride + size - 1`` and
    describes the audio ending ``lookahead`` frames before that.
    """
    t = np.asarray(frames, dtype=np.float64) + timing.get("warm_frames", 0)
    end_frame = timing["offset"] + t * timing["stride"] + timing["size"] - 1
    hop = timing["hop"]
    end_sample = end_frame * hop + timing["n_fft"] - timing["lookahead"] * hop - timing.get("warmup_samples", 0)
    return end_sample / timing["sample_rate"]
