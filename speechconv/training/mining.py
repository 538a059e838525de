"""Hard negatives: the moments of long keyword-free recordings that a trained detector scores highest.

Each recording is streamed through the spotter; every local score peak at or above ``min_score`` (one per
``refractory_s``) becomes a candidate, and the ``top`` highest over all recordings are cut out as clips
of ``window_s`` seconds ending ``after_s`` after the peak (where a causal detector fires: at the end of
what it heard). Training on them again teaches the detector what it confuses with its keyword.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechconv.data.manifest import ManifestEntry


@dataclass(frozen=True)
class Candidate:
    path: str
    time: float
    score: float


def score_peaks(times: np.ndarray, scores: np.ndarray, min_score: float, refractory_s: float) -> list[int]:
    """Indices of the highest frames, at or above ``min_score``, at least ``refractory_s`` apart (greedy)."""
    order = np.argsort(-scores, kind="stable")
    taken: list[int] = []
    for i in order:
        if scores[i] < min_score:
            break
        if all(abs(times[i] - times[j]) >= refractory_s for j in taken):
            taken.append(int(i))
    return sorted(taken)


def mine_hard_negatives(spotter, files: list[str | os.PathLike], out_dir: str | os.PathLike, top: int = 600,
                        min_score: float = 0.2, window_s: float = 1.5, after_s: float = 0.2,
                        refractory_s: float = 1.0, label: str = "negative") -> list[ManifestEntry]:
    """Clips (written under ``out_dir``) of the ``top`` highest-scoring moments of ``files``, best first."""
    from speechconv.audio import load_audio, save_audio
    from speechconv.evaluation.streams import score_stream

    candidates: list[Candidate] = []
    for path in files:
        times, scores = score_stream(spotter, path)
        candidates += [Candidate(str(path), float(times[i]), float(scores[i]))
                       for i in score_peaks(times, scores, min_score, refractory_s)]
    candidates.sort(key=lambda c: -c.score)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = spotter.sample_rate
    entries = []
    for rank, c in enumerate(candidates[:top]):
        audio = load_audio(c.path, rate)[0].numpy()
        end = min(len(audio), int(round((c.time + after_s) * rate)))
        start = max(0, end - int(round(window_s * rate)))
        clip = out_dir / f"{rank:05d}_{Path(c.path).stem}_{c.time:.2f}.wav"
        save_audio(clip, audio[start:end], rate)
        entries.append(ManifestEntry(path=str(clip), label=label, engine="mined", speaker=Path(c.path).stem,
                                     duration=(end - start) / rate,
                                     params={"source": c.path, "time": round(c.time, 3), "score": round(c.score, 4)}))
    return entries
