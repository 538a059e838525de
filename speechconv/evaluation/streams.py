"""Inputs of keyword-spotting evaluation: ground-truth CSVs, detection files and score curves of
streams computed with a model (cached as ``.npz`` so that every detector setting reuses them)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from speechconv.detect.detector import Event
from speechconv.errors import SpeechconvError
from speechconv.evaluation.kws import KeywordSpan, StreamScores

#: Ground-truth columns that name the group a keyword's recall is reported under, in order of preference.
GROUP_COLUMNS = ("speaker", "group", "source")
SCORE_BLOCK_SECONDS = 60.0


class EvaluationError(SpeechconvError):
    """Bad inputs for an evaluation."""


def truth_path(wav: str | os.PathLike) -> Path:
    """The ground-truth CSV that belongs to a stream: same folder and stem, ``.csv``."""
    return Path(wav).with_suffix(".csv")


def read_keyword_spans(csv_path: str | os.PathLike, keyword: str, group_by: str | None = None) -> list[KeywordSpan]:
    """Spans of the rows labelled ``keyword`` in a ground-truth CSV (``start,end,label,...``).

    ``group_by`` names the column that groups keywords for per-group recall; by default the first of
    :data:`GROUP_COLUMNS` that the file has and fills.
    """
    from speechconv.data.evalstream import EvalStreamError, read_ground_truth

    try:
        rows = read_ground_truth(csv_path)
    except EvalStreamError as err:
        raise EvaluationError(str(err)) from None
    wanted = [r for r in rows if r.get("label") == keyword]
    if group_by is None:
        group_by = next((c for c in GROUP_COLUMNS if any(r.get(c) for r in wanted)), None)
    elif wanted and group_by not in wanted[0]:
        raise EvaluationError(f"{csv_path}: no column {group_by!r} to group keywords by")
    return [KeywordSpan(r["start"], r["end"], str(r.get(group_by) or "") if group_by else "") for r in wanted]


def stream_duration(wav: str | os.PathLike) -> float:
    from speechconv.audio import AudioError, audio_info

    try:
        return float(audio_info(wav).duration)
    except AudioError as err:
        raise EvaluationError(str(err)) from None


def read_detections(path: str | os.PathLike) -> dict[str, list[Event]]:
    """Events per file from the CSV (``file,start,end,peak,score``) or JSONL output of ``speechconv detect``
    (one record per file, ``{"file", "events": [...]}``, or the older one record per event). A file whose
    record carries an ``error`` was not scanned: that is an error here, not a file without detections."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: detections file not found")
    events: dict[str, list[Event]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if path.suffix == ".jsonl":
                records = [json.loads(line) for line in handle if line.strip()]
            else:
                records = list(csv.DictReader(handle))
        for r in records:
            if r.get("error"):
                raise EvaluationError(f"{path}: {r['file']} was not scanned ({r['error']})")
            found = events.setdefault(str(r["file"]), [])
            for e in r["events"] if "events" in r else [r]:
                found.append(Event(float(e["start"]), float(e["end"]), float(e["peak"]), float(e["score"])))
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
        raise EvaluationError(f"{path}: not a detect CSV/JSONL with file,start,end,peak,score ({err})") from None
    return events


def detections_for(events: dict[str, list[Event]], wav: str | os.PathLike) -> list[Event]:
    """The events of ``wav``, matched by the path as written, its resolved path or its file name."""
    wav = Path(wav)
    for key in (str(wav), str(wav.resolve())):
        if key in events:
            return events[key]
    by_name = [k for k in events if Path(k).name == wav.name]
    return events[by_name[0]] if len(by_name) == 1 else []


def score_stream(model, wav: str | os.PathLike,
                 cache: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(times, keyword scores)`` of ``wav`` streamed through ``model`` (a :class:`KeywordSpotter` or an
    engine's model, :func:`speechconv.runtime.load_model`), cached in ``cache`` (``.npz``).

    The cache is reused while it is newer than the WAV.
    """
    from speechconv.audio import AudioError
    from speechconv.audio.reader import iter_audio_arrays
    from speechconv.detect.runner import as_model

    wav = Path(wav)
    if cache is not None:
        cache = Path(cache)
        if cache.is_file() and wav.is_file() and cache.stat().st_mtime > wav.stat().st_mtime:
            data = np.load(cache)
            return data["times"], data["scores"]
    model = as_model(model)
    stream = model.open_stream()
    times, scores = [], []
    try:
        for chunk in iter_audio_arrays(str(wav), model.sample_rate, SCORE_BLOCK_SECONDS):
            t, s = stream.feed(chunk)
            times.append(t)
            scores.append(s)
        t, s = stream.finish()
        times.append(t)
        scores.append(s)
    except AudioError as err:
        raise EvaluationError(str(err)) from None
    result = (np.concatenate(times) if times else np.zeros(0),
              np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.stem}.tmp.npz")
        np.savez(tmp, times=result[0], scores=result[1])
        os.replace(tmp, cache)
    return result


def load_stream(wav: str | os.PathLike, keyword: str, *, spotter=None, events: dict[str, list[Event]] | None = None,
                truth: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                group_by: str | None = None, keyword_free: bool = False) -> StreamScores:
    """A stream with its truth and either its score curve (``spotter``) or its given ``events``.

    A ``keyword_free`` stream (for counting false alarms) needs no ground truth; one beside it is still used.
    """
    wav = Path(wav)
    truth = Path(truth) if truth else truth_path(wav)
    spans = [] if keyword_free and not truth.is_file() else read_keyword_spans(truth, keyword, group_by)
    truth_csv = str(truth) if truth.is_file() else None
    duration = stream_duration(wav)
    if spotter is not None:
        cache = None if cache_dir is None else Path(cache_dir) / f"{wav.stem}.npz"
        times, scores = score_stream(spotter, wav, cache)
        return StreamScores(wav.stem, duration, spans, times=times, scores=scores, truth_csv=truth_csv)
    if events is None:
        raise EvaluationError("give a model or detections to evaluate")
    return StreamScores(wav.stem, duration, spans, events=detections_for(events, wav), truth_csv=truth_csv)
