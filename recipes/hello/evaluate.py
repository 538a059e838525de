"""Evaluation of the "hello" spotter: clip accuracy, stream detection metrics and a DET curve.

* Streams are scored once (:func:`score_stream`, posteriors cached as ``.npz``); every detector
  setting then runs on the cached curve.
* A keyword in the ground truth is *found* when a detection's peak lies in
  ``[start - EARLY_S, end + LATE_S]``; every detection whose peak lies in no keyword window is a
  *false alarm*. The false-reject rate comes from the keyword stream; FA/h from the negative-only
  stream of held-out real speech and noise. False alarms on the keyword stream (whose negatives
  include synthetic near-misses such as "hollow" and "fellow") are reported separately.
* The operating point (smoothing window and threshold) is chosen on the dev streams: the lowest
  false-reject rate with at most ``target_fa_per_hour`` there; ties go to the higher threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechconv.data.evalstream import read_ground_truth
from speechconv.detect.detector import Detector
from speechconv.streaming.engine import StreamingEngine

EARLY_S, LATE_S = 0.1, 0.5
THRESHOLDS = np.round(np.concatenate([np.arange(0.05, 0.95, 0.025), np.arange(0.95, 0.9995, 0.0025)]), 4)
SMOOTHING_FRAMES = (1, 2, 3, 5)
CHUNK_SECONDS = 30.0


@dataclass
class StreamScores:
    """Keyword posterior curve of one stream with its ground truth."""

    name: str
    times: np.ndarray
    scores: np.ndarray
    duration_s: float
    keywords: list[tuple[float, float]]  # (start, end) of each keyword in the stream


@dataclass
class OperatingPoint:
    """Detector setting with its misses (keyword stream) and false alarms (negative-only stream).

    ``fa_per_hour`` counts the negative-only stream of real speech and noise; ``keyword_stream_fa_per_hour``
    the keyword stream, whose negatives include synthetic phonetic near-misses of "hello".
    """

    smoothing_frames: int
    threshold: float
    frr: float
    fa_per_hour: float
    found: int
    keywords: int
    false_alarms: int
    hours: float
    keyword_stream_false_alarms: int
    keyword_stream_fa_per_hour: float


@torch.inference_mode()
def score_stream(spotter, wav: Path, csv: Path, cache: Path | None = None, keyword: str = "hello") -> StreamScores:
    """Posteriors of ``wav`` streamed through ``spotter`` in 30 s chunks (cached in ``cache``)."""
    truth = read_ground_truth(csv)
    keywords = [(row["start"], row["end"]) for row in truth if row["label"] == keyword]
    info = sf.info(str(wav))
    if info.samplerate != spotter.sample_rate:
        raise ValueError(f"{wav}: sample rate {info.samplerate}, the model needs {spotter.sample_rate}")
    if cache is not None and cache.is_file() and cache.stat().st_mtime > wav.stat().st_mtime:
        data = np.load(cache)
        return StreamScores(wav.stem, data["times"], data["scores"], info.duration, keywords)
    engine = StreamingEngine(spotter)
    times, scores = [], []
    block = int(CHUNK_SECONDS * info.samplerate)
    for chunk in sf.blocks(str(wav), blocksize=block, dtype="float32", always_2d=True):
        t, s = engine.feed(torch.from_numpy(chunk.mean(axis=1)))
        times.append(t)
        scores.append(s)
    result = StreamScores(wav.stem, np.concatenate(times), np.concatenate(scores).astype(np.float32),
                          info.duration, keywords)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, times=result.times, scores=result.scores)
    return result


def match_events(peaks: np.ndarray, keywords: list[tuple[float, float]]) -> tuple[int, int]:
    """``(keywords found, false alarms)`` for detection peak times against keyword spans."""
    if not keywords:
        return 0, len(peaks)
    starts = np.array([k[0] for k in keywords]) - EARLY_S
    ends = np.array([k[1] for k in keywords]) + LATE_S
    inside = (peaks[:, None] >= starts[None, :]) & (peaks[:, None] <= ends[None, :])
    found = int(inside.any(axis=0).sum())
    false_alarms = int((~inside.any(axis=1)).sum())
    return found, false_alarms


def _count(stream: StreamScores, detector: Detector) -> tuple[int, int]:
    events = detector.detect(stream.times, stream.scores)
    return match_events(np.array([e.peak for e in events], dtype=np.float64), stream.keywords)


def operating_point(keyword_stream: StreamScores, negative_stream: StreamScores, smoothing_frames: int,
                    threshold: float, detector_options: dict) -> OperatingPoint:
    """FRR on the keyword stream and FA/h on the negative-only stream for one detector setting."""
    detector = Detector(threshold=float(threshold), smoothing_frames=smoothing_frames, **detector_options)
    found, keyword_fa = _count(keyword_stream, detector)
    _, false_alarms = _count(negative_stream, detector)
    total = len(keyword_stream.keywords)
    hours = negative_stream.duration_s / 3600
    frr = 1.0 - found / total if total else math.nan
    return OperatingPoint(smoothing_frames, float(threshold), frr, false_alarms / hours, found, total,
                          false_alarms, hours, keyword_fa, keyword_fa / (keyword_stream.duration_s / 3600))


def sweep(keyword_stream: StreamScores, negative_stream: StreamScores, detector_options: dict,
          smoothing: tuple[int, ...] = SMOOTHING_FRAMES, thresholds: np.ndarray = THRESHOLDS) -> list[OperatingPoint]:
    """Every (smoothing, threshold) combination."""
    return [operating_point(keyword_stream, negative_stream, w, t, detector_options)
            for w in smoothing for t in thresholds]


def choose(points: list[OperatingPoint], target_fa_per_hour: float) -> OperatingPoint:
    """Lowest FRR with FA/h <= target (ties: fewer false alarms, then the higher threshold)."""
    allowed = [p for p in points if p.fa_per_hour <= target_fa_per_hour]
    if not allowed:  # nothing meets the target: the setting with the fewest false alarms
        return min(points, key=lambda p: (p.fa_per_hour, p.frr, -p.threshold))
    return min(allowed, key=lambda p: (p.frr, p.fa_per_hour, -p.threshold))


def frr_at(points: list[OperatingPoint], fa_per_hour: float) -> OperatingPoint | None:
    """Best point of a DET sweep with FA/h <= ``fa_per_hour`` (None when none qualifies)."""
    allowed = [p for p in points if p.fa_per_hour <= fa_per_hour]
    return min(allowed, key=lambda p: (p.frr, -p.threshold)) if allowed else None


def plot_det(curves: dict[str, list[OperatingPoint]], out: Path, marks: dict[str, OperatingPoint]) -> None:
    """DET curve: FRR (%) against false alarms per hour, one line per curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, points in curves.items():
        order = sorted(points, key=lambda p: p.threshold)
        ax.plot([p.fa_per_hour for p in order], [100 * p.frr for p in order], marker=".", ms=3, label=label)
    for label, p in marks.items():
        ax.plot([p.fa_per_hour], [100 * p.frr], "o", ms=8, mfc="none", label=label)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("hello: DET curve on the held-out test streams")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


@torch.inference_mode()
def clip_accuracy(spotter, entries, clip_seconds: float, threshold: float = 0.5) -> dict:
    """Clip-level accuracy: a clip is "hello" when its best frame's hello posterior >= threshold.

    Clips are placed as in validation (speech end ``0.1 s`` before the window end).
    """
    from speechconv.training.datamodules import AudioClipDataset

    labels = list(spotter.labels)
    dataset = AudioClipDataset(entries, labels, spotter.sample_rate, clip_seconds, train=False)
    keyword = spotter.keyword_index
    correct = {label: 0 for label in labels}
    count = {label: 0 for label in labels}
    batch = 64
    for first in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(first, min(first + batch, len(dataset)))]
        waves = torch.stack([item["wave"] for item in items])
        best = spotter(waves)[:, keyword].amax(dim=-1)
        for item, score in zip(items, best.tolist()):
            label = labels[int(item["label"])]
            predicted = labels[keyword] if score >= threshold else label if label != labels[keyword] else "?"
            count[label] += 1
            correct[label] += int(predicted == label)
    total = sum(count.values())
    return {
        "accuracy": sum(correct.values()) / total,
        "per_label": {label: correct[label] / count[label] for label in labels if count[label]},
        "clips": count,
    }


def save_json(path: Path, data: dict) -> None:
    def convert(value):
        if isinstance(value, OperatingPoint):
            return asdict(value)
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        raise TypeError(type(value))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=convert) + "\n", encoding="utf-8")


@torch.inference_mode()
def clip_scores(spotter, entries, clip_seconds: float = 1.5) -> np.ndarray:
    """Best-frame keyword posterior of each clip (placed as in validation)."""
    from speechconv.training.datamodules import AudioClipDataset

    dataset = AudioClipDataset(entries, list(spotter.labels), spotter.sample_rate, clip_seconds, train=False,
                               label_map={label: spotter.labels[0] for label in {e.label for e in entries}})
    out = []
    for first in range(0, len(dataset), 64):
        waves = torch.stack([dataset[i]["wave"] for i in range(first, min(first + 64, len(dataset)))])
        out.append(spotter(waves)[:, spotter.keyword_index].amax(dim=-1))
    return torch.cat(out).numpy()
