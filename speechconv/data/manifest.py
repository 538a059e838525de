"""One manifest format for every data set: a list of :class:`ManifestEntry` stored as JSONL or CSV.

Paths are written relative to the manifest's folder when they lie under it, and resolved against
that folder on read, so a corpus folder can be moved as a whole.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from speechconv.errors import SpeechconvError

MANIFEST_FIELDS = ("path", "label", "text", "engine", "voice", "params", "duration", "speaker", "split")


class ManifestError(SpeechconvError):
    """A manifest file is missing, malformed or has an unsupported extension."""


@dataclass
class ManifestEntry:
    """One audio clip with its label and provenance."""

    path: str
    label: str
    text: str = ""
    engine: str = ""
    voice: str = ""
    params: dict = field(default_factory=dict)
    duration: float = 0.0
    speaker: str = ""
    split: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    raise ManifestError(f"{path}: unsupported manifest extension {suffix!r} (use .jsonl or .csv)")


def _relative_path(clip: str, root: Path) -> str:
    """``clip`` relative to ``root`` when it lies under it, else unchanged."""
    clip_path = Path(clip)
    if not clip_path.is_absolute():
        return clip_path.as_posix()
    try:
        return clip_path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(clip_path)


def write_manifest(path: str | os.PathLike, entries: Iterable[ManifestEntry]) -> Path:
    """Write entries as JSONL (``.jsonl``) or CSV (``.csv``/``.tsv``; params JSON-encoded), atomically."""
    path = Path(path)
    fmt = _format(path)
    rows = []
    for entry in entries:
        row = entry.to_dict()
        row["path"] = _relative_path(entry.path, path.parent)
        rows.append(row)
    if fmt == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, delimiter="\t" if fmt == "tsv" else ",")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "params": json.dumps(row["params"], sort_keys=True)})
        text = buffer.getvalue()
    atomic_write_text(path, text)
    return path


def _entry_from_row(row: dict, where: str, root: Path) -> ManifestEntry:
    if not row.get("path") or row.get("label") in (None, ""):
        raise ManifestError(f"{where}: every entry needs 'path' and 'label'")
    unknown = set(row) - set(MANIFEST_FIELDS)
    values = {key: row[key] for key in MANIFEST_FIELDS if key in row and row[key] is not None}
    params = values.get("params", {})
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError as err:
            raise ManifestError(f"{where}: 'params' is not valid JSON ({err.msg})") from None
    if not isinstance(params, dict):
        raise ManifestError(f"{where}: 'params' must be a JSON object")
    if unknown:  # keep extra columns instead of dropping them silently
        params = {**params, **{key: row[key] for key in sorted(unknown)}}
    try:
        duration = float(values.get("duration") or 0.0)
    except ValueError:
        raise ManifestError(f"{where}: 'duration' is not a number: {values['duration']!r}") from None
    clip = Path(str(values["path"]))
    if not clip.is_absolute():
        clip = root / clip
    return ManifestEntry(
        path=str(clip),
        label=str(values["label"]),
        text=str(values.get("text", "")),
        engine=str(values.get("engine", "")),
        voice=str(values.get("voice", "")),
        params=params,
        duration=duration,
        speaker=str(values.get("speaker", "")),
        split=str(values.get("split", "")),
    )


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read a JSONL or CSV manifest; relative clip paths are resolved against the manifest's folder."""
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.parent
    entries: list[ManifestEntry] = []
    with open(path, encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{number}: invalid JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise ManifestError(f"{path}:{number}: each line must be a JSON object")
                entries.append(_entry_from_row(row, f"{path}:{number}", root))
        else:
            reader = csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ",")
            if (
                reader.fieldnames is None
                or "path" not in reader.fieldnames
                or "label" not in reader.fieldnames
            ):
                raise ManifestError(f"{path}: CSV header must include 'path' and 'label'")
            for number, row in enumerate(reader, start=2):
                entries.append(_entry_from_row(row, f"{path}:{number}", root))
    return entries
