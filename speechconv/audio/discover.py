"""Expand command-line paths into audio files: directories are searched recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def is_audio_name(filename: str) -> bool:
    """True for a visible file name with an audio extension (case-insensitive).

    Hidden names are skipped: half-written temporaries (``.x.wav.tmp``) and macOS ``._x.wav``
    resource forks are not audio.
    """
    return not filename.startswith(".") and filename.lower().endswith(AUDIO_EXTENSIONS)


def _walk_sorted(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(os.path.join(root, name) for name in files if is_audio_name(name))
    return sorted(found)


def find_audio_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files as given, directories replaced by their audio files (recursive, sorted by path).

    ``"-"`` (standard input) and missing paths are kept, so the caller can read or report them.
    Duplicates are dropped, keeping the first occurrence.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result: list[str] = []
    seen: set[str] = set()
    for path in paths:
        path = os.fspath(path)
        expanded = _walk_sorted(path) if path != "-" and os.path.isdir(path) else [path]
        for item in expanded:
            if item not in seen:
                seen.add(item)
                result.append(item)
    return result
