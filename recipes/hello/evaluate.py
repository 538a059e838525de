"""Evaluation of the "hello" spotter: clip accuracy here; stream metrics from the package.

* Streams are scored once (``speechconv.evaluation.streams.score_stream``, posteriors cached as
  ``.npz``); every detector setting then runs on the cached curve.
* Matching, FRR against FA/h, the operating-point choice and the DET plot are
  :mod:`speechconv.evaluation.kws`: the FRR comes from the keyword stream, FA/h from the
  negative-only stream of held-out real speech and noise. False alarms on the keyword stream (whose
  negatives include synthetic near-misses such as "hollow" and "fellow") are reported separately.
* The operating point (smoothing window and threshold) is chosen on the dev streams: the lowest
  false-reject rate with at most ``target_fa_per_hour`` there; ties go to the higher threshold.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from speechconv.evaluation import kws, streams
from speechconv.evaluation.kws import StreamScores

EARLY_S, LATE_S = kws.EARLY_S, kws.LATE_S


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


def score_stream(spotter, wav: Path, csv: Path, cache: Path | None = None, keyword: str = "hello") -> StreamScores:
    """Posteriors of ``wav`` through ``spotter`` with the keyword spans of ``csv`` (cached in ``cache``)."""
    times, scores = streams.score_stream(spotter, wav, cache)
    return StreamScores(wav.stem, streams.stream_duration(wav), streams.read_keyword_spans(csv, keyword),
                        times=times, scores=scores)


def operating_point(keyword_stream: StreamScores, negative_stream: StreamScores, smoothing_frames: int,
                    threshold: float, detector_options: dict) -> OperatingPoint:
    """FRR on the keyword stream and FA/h on the negative-only stream for one detector setting."""
    p = kws.operating_point([keyword_stream], [negative_stream, keyword_stream], smoothing_frames, threshold,
                            detector_options)
    keyword_fa = p.false_alarms_by_stream[keyword_stream.name]
    negative_fa = p.false_alarms_by_stream[negative_stream.name]
    hours = negative_stream.duration_s / 3600
    return OperatingPoint(smoothing_frames, float(threshold), p.frr, negative_fa / hours, p.found, p.keywords,
                          negative_fa, hours, keyword_fa, keyword_fa / (keyword_stream.duration_s / 3600))


def sweep(keyword_stream: StreamScores, negative_stream: StreamScores, detector_options: dict,
          smoothing: tuple[int, ...] = kws.SMOOTHING_FRAMES, thresholds: np.ndarray = kws.THRESHOLDS
          ) -> list[OperatingPoint]:
    """Every (smoothing, threshold) combination."""
    return [operating_point(keyword_stream, negative_stream, w, t, detector_options)
            for w in smoothing for t in thresholds]


choose = kws.choose
frr_at = kws.frr_at


def plot_det(curves: dict[str, list[OperatingPoint]], out: Path, marks: dict[str, OperatingPoint]) -> None:
    kws.plot_det(curves, out, marks, title="hello: DET curve on the held-out test streams")


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
