"""Keyword-spotting metrics on long streams: event matching, FRR against false alarms per hour,
operating-point choice, per-group recall and the DET plot. Pure numpy; scoring audio with a model
lives in :mod:`speechconv.evaluation.streams`.

* A keyword in the ground truth is *found* when a detection's peak lies in
  ``[start - early_s, end + late_s]``. A detection whose peak lies in no keyword window is a
  *false alarm*; more detections inside one window count once and are not false alarms.
* The false-reject rate (FRR) is the share of keywords not found over the *keyword streams*; false
  alarms per hour are counted over the *false-alarm streams* (by default the keyword streams
  themselves, outside the keyword windows). Both roles may hold the same stream.
* A DET sweep runs the detector (smoothing window x threshold) over cached score curves; the
  operating point for a target is the lowest FRR with at most that many false alarms per hour
  (ties: fewer false alarms, then the higher threshold).
* Keywords carry a *group* (speaker, voice, keyword, ...) so recall can be reported per group.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from speechconv.detect.detector import Detector, Event

EARLY_S, LATE_S = 0.1, 0.5
THRESHOLDS = np.round(np.concatenate([np.arange(0.05, 0.95, 0.025), np.arange(0.95, 0.9995, 0.0025)]), 4)
#: Dense near 1, for trained detectors whose real keywords and hard negatives both score close to the top
#: (and for fused scores, which crowd there too).
DENSE_THRESHOLDS = np.round(np.unique(np.concatenate([np.arange(0.01, 0.95, 0.01), np.arange(0.95, 0.999, 0.0025),
                                                      np.arange(0.999, 1.0, 0.0001)])), 5)
SMOOTHING_FRAMES = (1, 2, 3, 5)


@dataclass(frozen=True)
class KeywordSpan:
    """One spoken keyword in a stream (seconds) and the group its recall is reported under."""

    start: float
    end: float
    group: str = ""


@dataclass
class StreamScores:
    """Keyword score curve of one stream (or its events, when only detections are known) with its truth."""

    name: str
    duration_s: float
    keywords: list[KeywordSpan]
    times: np.ndarray | None = None
    scores: np.ndarray | None = None
    events: list[Event] | None = None  # detections given instead of a curve
    truth_csv: str | None = None  # where the stream's ground truth came from, if anywhere

    def detect(self, detector: Detector) -> list[Event]:
        """Events at the detector's setting: from the curve, or the given events at or above its threshold."""
        if self.scores is not None:
            return detector.detect(self.times, self.scores)
        return [e for e in self.events or [] if e.score >= detector.threshold]


def mean_curve(curves: list[StreamScores]) -> StreamScores:
    """One stream scored by an ensemble: the mean of several detectors' score curves of that stream.

    The detectors must share their frame times (same front-end hop and look-ahead)."""
    if not curves or any(c.scores is None for c in curves):
        raise ValueError("an ensemble needs at least one score curve per detector")
    first = curves[0]
    for other in curves[1:]:
        if other.times.shape != first.times.shape or not np.allclose(other.times, first.times):
            raise ValueError(f"{other.name}: detectors with different frame times cannot be averaged")
    scores = np.mean([c.scores for c in curves], axis=0).astype(np.float32)
    return StreamScores(first.name, first.duration_s, first.keywords, times=first.times, scores=scores,
                        truth_csv=first.truth_csv)


@dataclass
class OperatingPoint:
    """One detector setting with its misses and false alarms."""

    smoothing_frames: int
    threshold: float
    frr: float
    fa_per_hour: float
    found: int
    keywords: int
    false_alarms: int
    hours: float
    recall_by_group: dict[str, list[int]] = field(default_factory=dict)  # group: [found, total]
    false_alarms_by_stream: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def match_events(peaks: np.ndarray, keywords: list[KeywordSpan], early_s: float = EARLY_S,
                 late_s: float = LATE_S) -> tuple[np.ndarray, int]:
    """``(found flag per keyword, false alarms)`` for detection peak times against keyword spans."""
    inside = _inside_windows(peaks, keywords, early_s, late_s)
    return inside.any(axis=0), int((~inside.any(axis=1)).sum())


def _inside_windows(peaks, keywords: list[KeywordSpan], early_s: float, late_s: float) -> np.ndarray:
    """``(peaks, keywords)`` flags: peak i lies in keyword j's match window."""
    peaks = np.asarray(peaks, dtype=np.float64)
    starts = np.array([k.start for k in keywords], dtype=np.float64) - early_s
    ends = np.array([k.end for k in keywords], dtype=np.float64) + late_s
    return (peaks[:, None] >= starts[None, :]) & (peaks[:, None] <= ends[None, :])


def operating_point(keyword_streams: list[StreamScores], fa_streams: list[StreamScores], smoothing_frames: int,
                    threshold: float, detector_options: dict | None = None, early_s: float = EARLY_S,
                    late_s: float = LATE_S) -> OperatingPoint:
    """FRR over ``keyword_streams`` and FA/h over ``fa_streams`` for one detector setting."""
    detector = Detector(threshold=float(threshold), smoothing_frames=smoothing_frames, **(detector_options or {}))
    events: dict[int, list[Event]] = {}

    def events_of(stream: StreamScores) -> list[Event]:
        if id(stream) not in events:
            events[id(stream)] = stream.detect(detector)
        return events[id(stream)]

    by_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    found = total = 0
    for stream in keyword_streams:
        hits, _ = match_events(np.array([e.peak for e in events_of(stream)]), stream.keywords, early_s, late_s)
        for span, hit in zip(stream.keywords, hits):
            by_group[span.group][0] += int(hit)
            by_group[span.group][1] += 1
        found, total = found + int(hits.sum()), total + len(stream.keywords)
    fa_by_stream = {}
    for stream in fa_streams:
        _, fa = match_events(np.array([e.peak for e in events_of(stream)]), stream.keywords, early_s, late_s)
        fa_by_stream[stream.name] = fa
    hours = sum(s.duration_s for s in fa_streams) / 3600
    false_alarms = sum(fa_by_stream.values())
    return OperatingPoint(
        smoothing_frames=smoothing_frames, threshold=float(threshold),
        frr=1.0 - found / total if total else math.nan,
        fa_per_hour=false_alarms / hours if hours > 0 else math.nan,
        found=found, keywords=total, false_alarms=false_alarms, hours=hours,
        recall_by_group={g: v for g, v in sorted(by_group.items())}, false_alarms_by_stream=fa_by_stream,
    )


@dataclass(frozen=True)
class FalseAlarm:
    """A detection outside every keyword window, with what the ground truth says was there."""

    stream: str
    peak: float
    score: float
    truth: dict = field(default_factory=dict)  # the ground-truth row around the peak, if any

    def as_dict(self) -> dict:
        return asdict(self)


def top_false_alarms(fa_streams: list[StreamScores], n: int = 10, smoothing_frames: int = 1,
                     floor: float = 0.05, detector_options: dict | None = None, early_s: float = EARLY_S,
                     late_s: float = LATE_S) -> list[FalseAlarm]:
    """The ``n`` highest-scoring false alarms over ``fa_streams`` (detector at threshold ``floor``): the
    moments that set the FRR at a strict false-alarm target. Each carries the ground-truth row whose
    span holds its peak (label, speaker, source, text, where the CSV has them)."""
    from speechconv.data.evalstream import read_ground_truth

    detector = Detector(threshold=float(floor), smoothing_frames=smoothing_frames, **(detector_options or {}))
    alarms = []
    for stream in fa_streams:
        events = stream.detect(detector)
        inside = _inside_windows([e.peak for e in events], stream.keywords, early_s, late_s).any(axis=1)
        alarms += [(stream, e) for e, hit in zip(events, inside) if not hit]
    alarms.sort(key=lambda item: -item[1].score)
    rows_of: dict[str, list[dict]] = {}
    result = []
    for stream, event in alarms[:n]:
        if stream.truth_csv and stream.truth_csv not in rows_of:
            rows_of[stream.truth_csv] = read_ground_truth(stream.truth_csv)
        rows = rows_of.get(stream.truth_csv or "", [])
        row = next((r for r in rows if r["start"] - early_s <= event.peak <= r["end"] + late_s), {})
        truth = {k: v for k, v in row.items() if k in ("start", "end", "label", "speaker", "source", "text")}
        result.append(FalseAlarm(stream.name, float(event.peak), float(event.score), truth))
    return result


def false_alarm_table(alarms: list[FalseAlarm]) -> str:
    """Markdown table of :func:`top_false_alarms`."""
    lines = ["| score | stream | at (s) | label | speaker | what was said |", "|---|---|---|---|---|---|"]
    for a in alarms:
        what = a.truth.get("text") or Path(str(a.truth.get("source", ""))).name or "(no ground-truth row here)"
        lines.append(f"| {a.score:.4f} | {a.stream} | {a.peak:.2f} | {a.truth.get('label', '')} | "
                     f"{a.truth.get('speaker', '')} | {str(what)[:80]} |")
    return "\n".join(lines) + "\n"


def sweep(keyword_streams: list[StreamScores], fa_streams: list[StreamScores], detector_options: dict | None = None,
          smoothing: tuple[int, ...] = SMOOTHING_FRAMES, thresholds: np.ndarray = THRESHOLDS,
          early_s: float = EARLY_S, late_s: float = LATE_S) -> list[OperatingPoint]:
    """Every (smoothing, threshold) combination."""
    return [operating_point(keyword_streams, fa_streams, w, t, detector_options, early_s, late_s)
            for w in smoothing for t in thresholds]


def choose(points: list[OperatingPoint], target_fa_per_hour: float) -> OperatingPoint:
    """Lowest FRR with FA/h <= target (ties: fewer false alarms, then the higher threshold).

    When no setting meets the target, the one with the fewest false alarms per hour.
    """
    if not points:
        raise ValueError("no operating points to choose from")
    allowed = [p for p in points if p.fa_per_hour <= target_fa_per_hour]
    if not allowed:
        return min(points, key=lambda p: (p.fa_per_hour, p.frr, -p.threshold))
    return min(allowed, key=lambda p: (p.frr, p.fa_per_hour, -p.threshold))


def frr_at(points: list[OperatingPoint], fa_per_hour: float) -> OperatingPoint | None:
    """Best point of a sweep with FA/h <= ``fa_per_hour`` (None when none qualifies)."""
    allowed = [p for p in points if p.fa_per_hour <= fa_per_hour]
    return min(allowed, key=lambda p: (p.frr, p.fa_per_hour, -p.threshold)) if allowed else None


def det_curve(points: list[OperatingPoint]) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope of a sweep: ``(FA/h, FRR)`` sorted by FA/h, the best FRR at or below each FA/h."""
    if not points:
        return np.zeros(0), np.zeros(0)
    fa = np.array(sorted({p.fa_per_hour for p in points}))
    frr = np.array([min(p.frr for p in points if p.fa_per_hour <= f) for f in fa])
    return fa, frr


def describe(point: OperatingPoint | None) -> str:
    """One-line summary of an operating point."""
    if point is None:
        return "not reached"
    return (f"FRR {100 * point.frr:.2f}% ({point.found}/{point.keywords} found), {point.fa_per_hour:.2f} FA/h "
            f"({point.false_alarms} in {point.hours:.2f} h); threshold {point.threshold:g}, "
            f"smoothing {point.smoothing_frames}")


def group_table(point: OperatingPoint) -> str:
    """Markdown table of recall per group at ``point``."""
    rows = "".join(f"| {g or '(none)'} | {f}/{n} | {100 * f / n:.1f}% |\n"
                   for g, (f, n) in point.recall_by_group.items() if n)
    return "| group | found | recall |\n|---|---|---|\n" + rows


def plot_det(curves: dict[str, list[OperatingPoint]], out: str | Path, marks: dict[str, OperatingPoint] | None = None,
             title: str = "DET curve") -> Path:
    """DET PNG: false-reject rate (%) against false alarms per hour (lower envelope per curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, points in curves.items():
        fa, frr = det_curve(points)
        ax.step(fa, 100 * frr, where="post", marker=".", ms=3, label=label)
    for label, p in (marks or {}).items():
        ax.plot([p.fa_per_hour], [100 * p.frr], "o", ms=8, mfc="none", label=label)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
