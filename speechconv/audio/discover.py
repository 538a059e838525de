"""Expand command-line paths into audio files: directories are searched recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def is_audio_name(filename: str) -> bool:
    """True for a visible file name with an audio extension (case-insensitive).

    Hidden names are skipped: half-written temporaries (``.x.wav.tmp``) and macOS ``._x.wav``
    resource forks are not audio.
    """
    return not filename.startswith(".") and filename.lower().endswith(AUDIO_EXTENSIONS)


@dataclass
class Expansion:
    """Audio files found for the command-line paths, and what could not be searched.

    ``errors``: folders that could not be listed (or held no audio), as ``"PATH: reason"``; their files
    are missing from ``files``. ``notes``: symbolic links to folders searched already (loops and
    duplicates), skipped so that no file is found twice.
    """

    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _walk_sorted(folder: str, expansion: Expansion) -> list[str]:
    """Audio files under ``folder``, following symbolic links to folders once each (by device and inode)."""
    found: list[str] = []
    try:
        top = os.stat(folder)
        visited = {(top.st_dev, top.st_ino): folder}
    except OSError:
        visited = {}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                entries = list(entries)
        except OSError as err:
            expansion.errors.append(f"{current}: cannot list folder ({err.strerror or err}); its files are skipped")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                if is_audio_name(entry.name):
                    found.append(entry.path)
                continue
            try:
                st = entry.stat()
            except OSError as err:
                expansion.errors.append(f"{entry.path}: cannot search folder ({err.strerror or err})")
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                expansion.notes.append(f"{entry.path}: skipped, links to a folder already searched ({visited[key]})")
                continue
            visited[key] = entry.path
            pending.append(entry.path)
    return sorted(found)


def expand_audio_paths(paths: Iterable[str | os.PathLike[str]]) -> Expansion:
    """Files as given, folders replaced by their audio files (recursive, sorted by path).

    ``"-"`` (standard input) and missing paths are kept, so the caller can read or report them.
    Duplicates are dropped, keeping the first occurrence. Time and memory are linear in the number of files.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    expansion = Expansion()
    seen: set[str] = set()
    for path in paths:
        path = os.fspath(path)
        if path != "-" and os.path.isdir(path):
            errors_before = len(expansion.errors)
            expanded = _walk_sorted(path, expansion)
            if not expanded and len(expansion.errors) == errors_before:
                expansion.errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder")
        else:
            expanded = [path]
        for item in expanded:
            if item not in seen:
                seen.add(item)
                expansion.files.append(item)
    return expansion


def find_audio_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files of :func:`expand_audio_paths` (folders that cannot be searched are left out)."""
    return expand_audio_paths(paths).files
