"""From per-frame keyword posteriors to detection events.

An :class:`Event` has four fields, all in seconds from the stream's first sample except ``score``:

- ``peak``: the detection time, the frame of highest smoothed score. A score frame is timed by the end
  of the audio it has heard, and a causal model is surest once it has heard the word, so the peak
  comes near the end of the spoken keyword (before it for a drawn-out word);
- ``score``: the smoothed keyword posterior at ``peak``, in [0, 1];
- ``start``, ``end``: where the spoken keyword is estimated to be, so that a label track covers the
  word: ``end = peak - peak_delay_seconds`` and ``start = end - keyword_seconds``, clipped at 0
  (``0 <= start <= end <= peak``). The two calibration values come from the model's ``detector``
  options (:func:`calibrate_bracket` measures them from known word times); without them
  :data:`DEFAULT_KEYWORD_SECONDS` and :data:`DEFAULT_PEAK_DELAY_SECONDS` are used. The bracket is a
  function of the peak alone, so it does not depend on how a stream is cut into pieces.

Finding events, in order:

1. **Smoothing**: causal moving average over the last ``w`` frames (fewer at the start of the stream:
   the mean of the frames seen so far), as in Chen et al. 2014, "Small-footprint keyword spotting
   using deep neural networks". ``w = 1`` is no smoothing.
2. **Threshold**: frames whose smoothed score is ``>= threshold`` form runs; a run is a candidate
   event from its first to its last frame (the *run*, not the reported ``start``/``end``).
3. **Merging**: a run that starts less than ``merge_seconds`` after the end of the previous one joins
   it: one event, whose peak is the highest frame of all its runs.
4. **Refractory period**: an event whose run starts less than ``refractory_seconds`` after the run end
   of the last reported event is dropped (it does not extend the period).
5. **Bracket**: ``start`` and ``end`` are computed from the peak, as above.

:meth:`Detector.detect` runs on a whole score curve; :meth:`Detector.process` runs on successive
pieces of it and returns the events that are final so far, :meth:`Detector.flush` the rest. Both
give the same events whatever the pieces are (runs are found with numpy; only runs are looped over).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from speechconv.errors import ConfigError

#: Time comparisons allow this slack (seconds), so that frame times computed in floating point,
#: e.g. 0.12 - 0.07 = 0.04999..., compare as the exact multiples of the frame period they are.
TIME_EPS = 1e-9

#: Fallback ``keyword_seconds`` of a model whose ``detector`` options do not give it: a typical spoken
#: wake word of two or three syllables (the bundled "hello" measures 0.44 s, neural voices 0.59 s).
DEFAULT_KEYWORD_SECONDS = 0.6
#: Fallback ``peak_delay_seconds``: the toolkit's models are causal and time each score frame by the end
#: of the audio it has heard, so the score peaks near the end of the word (the bundled "hello" model
#: measures 0.01 s, with one score frame every 80 ms).
DEFAULT_PEAK_DELAY_SECONDS = 0.05


@dataclass(frozen=True)
class Event:
    """One detection, in seconds: the estimated spoken keyword ``start``..``end``, the detection time
    ``peak`` (highest smoothed score) and that ``score`` (see the module docstring)."""

    start: float
    end: float
    peak: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class _Group:
    """An event under construction (one or more merged runs): first and last frame above threshold,
    and the peak."""

    start: float
    end: float
    peak: float
    score: float

    def absorb(self, end: float, peak: float, score: float) -> None:
        self.end = end
        if score > self.score:
            self.peak, self.score = peak, score


def moving_average(history: np.ndarray, scores: np.ndarray, window: int) -> np.ndarray:
    """Causal moving average of ``scores`` given the ``history`` of up to ``window - 1`` earlier frames.

    Frame ``i`` averages itself and the ``window - 1`` frames before it, or all earlier frames when
    fewer exist. Each output depends only on its own window's values, so the result does not depend
    on how a curve is cut into pieces.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or len(scores) == 0:
        return scores
    missing = window - 1 - len(history)
    joined = np.concatenate([np.zeros(missing), history, scores])
    sums = sliding_window_view(joined, window).sum(axis=1)[-len(scores):]
    counts = np.minimum(np.arange(len(history) + 1, len(history) + len(scores) + 1), window)
    return sums / counts


def bracket(peak: float, keyword_seconds: float = DEFAULT_KEYWORD_SECONDS,
            peak_delay_seconds: float = DEFAULT_PEAK_DELAY_SECONDS) -> tuple[float, float]:
    """``(start, end)`` of the spoken keyword for a detection peak: ``end = peak - peak_delay_seconds``,
    ``start = end - keyword_seconds``, both clipped at 0. With ``peak >= 0`` (and both values >= 0, as the
    detector checks) ``0 <= start <= end <= peak``; a frame timed before the stream's first sample (some
    models' first frames) gives ``start = end = 0``."""
    end = max(0.0, peak - peak_delay_seconds)
    start = max(0.0, end - keyword_seconds)
    return start, end


def calibrate_bracket(peaks, spans) -> tuple[float, float]:
    """``(keyword_seconds, peak_delay_seconds)`` from detection peaks and the true word spans they found.

    ``peaks[i]`` is the peak time of the detection of the word spoken over ``spans[i] = (start, end)``
    (pair them first, e.g. with :func:`match_peaks_to_words`). ``keyword_seconds`` is the median word
    duration and ``peak_delay_seconds`` the median of ``peak - end``, clipped at 0 (a peak never precedes
    the reported end); both rounded to milliseconds. Medians, so a few odd words do not move them.
    """
    peaks = np.asarray(peaks, dtype=np.float64).reshape(-1)
    spans = np.asarray(spans, dtype=np.float64)
    if len(peaks) == 0:
        raise ValueError("calibrate_bracket needs at least one detected word")
    if spans.shape != (len(peaks), 2):
        raise ValueError(f"{len(peaks)} peaks need {len(peaks)} (start, end) spans, got shape {spans.shape}")
    if not (np.all(np.isfinite(peaks)) and np.all(np.isfinite(spans))):
        raise ValueError("peaks and spans must be finite")
    durations = spans[:, 1] - spans[:, 0]
    if np.any(durations < 0):
        raise ValueError("every span needs start <= end")
    keyword_seconds = round(float(np.median(durations)), 3)
    peak_delay_seconds = round(max(0.0, float(np.median(peaks - spans[:, 1]))), 3)
    return keyword_seconds, peak_delay_seconds


def match_peaks_to_words(peaks, spans, early_s: float = 0.1, late_s: float = 0.5,
                         scores=None) -> tuple[list[float], list[tuple[float, float]]]:
    """Pairs ``(peaks, spans)`` for :func:`calibrate_bracket`: each word span with the detection peak that
    lies between ``early_s`` before its start and ``late_s`` after its end (the highest-scoring one when
    ``scores`` are given, else the first); words without one and peaks outside every word are left out."""
    peaks = [float(p) for p in peaks]
    scores = [0.0] * len(peaks) if scores is None else [float(s) for s in scores]
    matched_peaks, matched_spans = [], []
    for start, end in spans:
        inside = [i for i, p in enumerate(peaks) if start - early_s <= p <= end + late_s]
        if inside:
            best = max(inside, key=lambda i: (scores[i], -i))
            matched_peaks.append(peaks[best])
            matched_spans.append((float(start), float(end)))
    return matched_peaks, matched_spans


def runs_above(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` indices (inclusive) of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


class Detector:
    """Posterior smoothing, threshold, merging and refractory period (see the module docstring).

    Parameters
    ----------
    threshold:
        Smoothed posterior at or above which a frame counts as keyword, in [0, 1].
    frame_period:
        Seconds between two score frames (converts ``smoothing_seconds`` to frames).
    smoothing_frames, smoothing_seconds:
        Moving-average window, in frames or in seconds (give at most one; default 1 frame = none).
    merge_seconds:
        Runs separated by less than this gap form one event.
    refractory_seconds:
        No new event's run may start within this time after the run end of a reported event.
    keyword_seconds:
        Typical spoken duration of the keyword: ``end - start`` of each event (default
        :data:`DEFAULT_KEYWORD_SECONDS`).
    peak_delay_seconds:
        Typical time from the end of the spoken keyword to the score peak: ``peak - end`` (default
        :data:`DEFAULT_PEAK_DELAY_SECONDS`). Both are clipped so that ``0 <= start <= end <= peak``.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        frame_period: float | None = None,
        smoothing_frames: int | None = None,
        smoothing_seconds: float | None = None,
        merge_seconds: float = 0.25,
        refractory_seconds: float = 0.5,
        keyword_seconds: float | None = None,
        peak_delay_seconds: float | None = None,
    ):
        if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
        if smoothing_frames is not None and smoothing_seconds is not None:
            raise ConfigError("give smoothing_frames or smoothing_seconds, not both")
        if smoothing_seconds is not None:
            if frame_period is None or frame_period <= 0:
                raise ConfigError("smoothing_seconds needs the frame_period of the scores")
            smoothing_frames = max(1, int(round(smoothing_seconds / frame_period)))
        smoothing_frames = 1 if smoothing_frames is None else smoothing_frames
        if not (isinstance(smoothing_frames, int) and smoothing_frames >= 1):
            raise ConfigError(f"smoothing_frames must be an int >= 1, got {smoothing_frames!r}")
        keyword_seconds = DEFAULT_KEYWORD_SECONDS if keyword_seconds is None else keyword_seconds
        peak_delay_seconds = DEFAULT_PEAK_DELAY_SECONDS if peak_delay_seconds is None else peak_delay_seconds
        for name, value in (("merge_seconds", merge_seconds), ("refractory_seconds", refractory_seconds),
                            ("keyword_seconds", keyword_seconds), ("peak_delay_seconds", peak_delay_seconds)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(f"{name} must be >= 0 seconds, got {value!r}")
        self.threshold = float(threshold)
        self.window = smoothing_frames
        self.merge_seconds = float(merge_seconds)
        self.refractory_seconds = float(refractory_seconds)
        self.keyword_seconds = float(keyword_seconds)
        self.peak_delay_seconds = float(peak_delay_seconds)
        self.reset()

    @classmethod
    def from_config(
        cls, config: dict[str, Any] | None, frame_period: float | None = None, **overrides: Any
    ) -> Detector:
        """Build from a model card's ``detector`` dict; ``overrides`` that are not None win."""
        options = dict(config or {})
        options.update({k: v for k, v in overrides.items() if v is not None})
        known = {"threshold", "smoothing_frames", "smoothing_seconds", "merge_seconds", "refractory_seconds",
                 "keyword_seconds", "peak_delay_seconds"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown detector option(s) {unknown}; accepted: {sorted(known)}")
        if "smoothing_frames" in overrides and overrides["smoothing_frames"] is not None:
            options.pop("smoothing_seconds", None)
        return cls(frame_period=frame_period, **options)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "smoothing_frames": self.window,
            "merge_seconds": self.merge_seconds,
            "refractory_seconds": self.refractory_seconds,
            "keyword_seconds": self.keyword_seconds,
            "peak_delay_seconds": self.peak_delay_seconds,
        }

    def reset(self) -> None:
        """Forget the stream: smoothing history, open runs and the refractory clock."""
        self._history = np.zeros(0)
        self._group: _Group | None = None
        self._open = False  # the last frame seen was above threshold (its run may continue)
        self._last_time = -math.inf
        self._last_end = -math.inf  # run end of the last reported event

    # --- whole curves ---------------------------------------------------------------------------
    def smooth(self, scores: np.ndarray) -> np.ndarray:
        """Smoothed scores of a whole curve (no history)."""
        return moving_average(np.zeros(0), scores, self.window)

    def detect(self, times: np.ndarray, scores: np.ndarray) -> list[Event]:
        """Events of a whole score curve (the detector's stream state is left untouched)."""
        fresh = Detector(self.threshold, None, self.window, None, self.merge_seconds, self.refractory_seconds,
                         self.keyword_seconds, self.peak_delay_seconds)
        return fresh.process(times, scores) + fresh.flush()

    # --- streams -------------------------------------------------------------------------------
    def process(self, times: np.ndarray, scores: np.ndarray) -> list[Event]:
        """Feed the next frames of the stream; return the events that can no longer change."""
        return self.process_smoothed(times, self.smooth_next(scores))

    def smooth_next(self, scores: np.ndarray) -> np.ndarray:
        """Smoothed values of the stream's next frames (updates the smoothing history)."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        smoothed = moving_average(self._history, scores, self.window)
        if self.window > 1:
            self._history = np.concatenate([self._history, scores])[-(self.window - 1):]
        return smoothed

    def process_smoothed(self, times: np.ndarray, smoothed: np.ndarray) -> list[Event]:
        """Like :meth:`process` for frames already passed through :meth:`smooth_next`."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(times) != len(smoothed):
            raise ValueError(f"{len(times)} times but {len(smoothed)} scores")
        events: list[Event] = []
        if len(times) == 0:
            return events
        above = smoothed >= self.threshold
        starts, ends = runs_above(above)
        for first, last in zip(starts.tolist(), ends.tolist()):
            peak_index = first + int(np.argmax(smoothed[first:last + 1]))
            peak, score = float(times[peak_index]), float(smoothed[peak_index])
            start, end = float(times[first]), float(times[last])
            if first == 0 and self._open and self._group is not None:
                self._group.absorb(end, peak, score)  # the run of the previous piece goes on
            elif self._group is not None and start - self._group.end < self.merge_seconds - TIME_EPS:
                self._group.absorb(end, peak, score)
            else:
                events.extend(self._close())
                self._group = _Group(start, end, peak, score)
        self._open = bool(above[-1])
        self._last_time = float(times[-1])
        if (self._group is not None and not self._open
                and self._last_time - self._group.end >= self.merge_seconds - TIME_EPS):
            events.extend(self._close())
        return events

    def flush(self) -> list[Event]:
        """End of stream: return the event still under construction, if any, and reset."""
        events = self._close()
        self.reset()
        return events

    def _close(self) -> list[Event]:
        group, self._group = self._group, None
        if group is None or group.start - self._last_end < self.refractory_seconds - TIME_EPS:
            return []
        self._last_end = group.end
        start, end = bracket(group.peak, self.keyword_seconds, self.peak_delay_seconds)
        return [Event(start, end, group.peak, group.score)]
