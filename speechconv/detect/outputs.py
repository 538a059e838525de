"""Writing detections: CSV, JSON lines and Audacity label tracks, and safe output files.

The fields of an event (:class:`~speechconv.detect.detector.Event`), times in seconds from the start
of the file with 3 decimals:

- ``start``, ``end``: the estimated span of the spoken keyword (``end = peak - peak_delay_seconds``,
  ``start = end - keyword_seconds``, clipped at 0; the two come from the model's ``detector`` options),
  so ``start <= end <= peak``;
- ``peak``: the detection time, the frame of highest smoothed score;
- ``score``: the smoothed keyword posterior at ``peak``, in [0, 1], with 4 decimals.

Formats:

- ``csv``: header ``file,start,end,peak,score``, one row per event (a file without detections has no
  row).
- ``jsonl``: one object per *file*, also for files without detections or that failed:
  ``{"file": ..., "events": [{"start": ..., "end": ..., "peak": ..., "score": ...}, ...]}``, plus
  ``"error": "reason"`` for a file that could not be read (fully); a file damaged part-way keeps the
  events found before the damage. So "scanned, nothing found" (``"events": []``) differs from "not
  scanned" (``"error"``).
- ``audacity``: a label track, ``start<TAB>end<TAB>label`` per event (no file column, so one track
  per input file); the label is the keyword and its score, e.g. ``hello 0.9312``.
"""

from __future__ import annotations

import csv
import io
import json
import os

from speechconv.detect.detector import Event
from speechconv.output_files import open_output

FORMATS = ("csv", "jsonl", "audacity")
CSV_HEADER = ("file", "start", "end", "peak", "score")


def event_fields(event: Event) -> dict[str, float]:
    """The output fields of one event, rounded as printed."""
    return {
        "start": round(event.start, 3),
        "end": round(event.end, 3),
        "peak": round(event.peak, 3),
        "score": round(event.score, 4),
    }


def csv_header() -> str:
    return ",".join(CSV_HEADER) + "\n"


def format_csv(path: str, events: list[Event]) -> str:
    """CSV rows (without header) of one file's events; file names are quoted when needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for event in events:
        writer.writerow([path, f"{event.start:.3f}", f"{event.end:.3f}", f"{event.peak:.3f}", f"{event.score:.4f}"])
    return buffer.getvalue()


def error_reason(path: str, error: str) -> str:
    """``error`` without the leading ``"PATH: "`` that error messages start with."""
    prefix = f"{path}: "
    return error[len(prefix):] if error.startswith(prefix) and len(error) > len(prefix) else error


def file_record(path: str, events: list[Event], error: str | None = None) -> dict[str, object]:
    """The JSONL record of one file: ``file``, ``events`` and, for a failed file, ``error`` (the reason)."""
    record: dict[str, object] = {"file": path, "events": [event_fields(event) for event in events]}
    if error is not None:
        record["error"] = error_reason(path, error)
    return record


def format_jsonl(path: str, events: list[Event], error: str | None = None) -> str:
    """One JSON line for one file (see the module docstring)."""
    return json.dumps(file_record(path, events, error)) + "\n"


def format_audacity(events: list[Event], keyword: str) -> str:
    return "".join(f"{e.start:.3f}\t{e.end:.3f}\t{keyword} {e.score:.4f}\n" for e in events)


def format_events(fmt: str, path: str, events: list[Event], keyword: str, error: str | None = None) -> str:
    """Text for one file's events in ``fmt`` (CSV without header). Only ``jsonl`` records ``error``."""
    if fmt == "csv":
        return format_csv(path, events)
    if fmt == "jsonl":
        return format_jsonl(path, events, error)
    if fmt == "audacity":
        return format_audacity(events, keyword)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


def per_input_paths(output: str, inputs: list[str]) -> list[str]:
    """One output path per input: ``output`` itself for one input, else ``<stem>_<input stem><ext>``.

    Inputs whose stems repeat get ``_2``, ``_3``, ... so no two outputs collide; standard input is
    called ``stdin``.
    """
    if len(inputs) == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    paths, used = [], set()
    for name in inputs:
        base = "stdin" if name == "-" else os.path.splitext(os.path.basename(name))[0]
        candidate, n = f"{stem}_{base}{ext}", 1
        while candidate in used:
            n += 1
            candidate = f"{stem}_{base}_{n}{ext}"
        used.add(candidate)
        paths.append(candidate)
    return paths


#: Safe output files (atomic for regular files, in place for devices and pipes); see :mod:`speechconv.output_files`.
atomic_output = open_output
