"""``speechconv info``: print the header of audio files, one line each (like ``soxi``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from speechconv.audio.discover import AUDIO_EXTENSIONS, find_audio_files

if TYPE_CHECKING:
    from speechconv.audio.io import AudioInfo

EPILOG = f"""\
output (stdout), one line per file, columns separated by two spaces, paths padded to one width:
  PATH  duration=1.234s  rate=16000  channels=1  format=WAV  subtype=PCM_16  frames=19744

A file that cannot be read prints 'speechconv: PATH: reason' on stderr; the other files are
still listed and the exit status is 1. Folders are searched recursively for
{" ".join(AUDIO_EXTENSIONS)} files. '-' reads one file from standard input."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show duration, sample rate, channels and format of audio files",
        description="Show duration, sample rate, channels and format of audio files (header only).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio file, folder, or '-' for stdin")
    parser.set_defaults(func=run)


def format_info(info: AudioInfo, width: int = 0) -> str:
    """One output line for ``info``; the path is left-aligned in ``width`` characters."""
    return "  ".join(
        [
            info.path.ljust(width),
            f"duration={info.duration:.3f}s",
            f"rate={info.sample_rate}",
            f"channels={info.channels}",
            f"format={info.format}",
            f"subtype={info.subtype}",
            f"frames={info.frames}",
        ]
    )


def _expand(paths: list[str]) -> tuple[list[str], list[str]]:
    """Files to inspect, and errors for folders that hold no audio."""
    files: list[str] = []
    seen: set[str] = set()
    errors = []
    for path in paths:
        found = find_audio_files([path])
        if not found and path != "-" and os.path.isdir(path):
            errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder")
        files.extend(f for f in found if f not in seen)
        seen.update(found)
    return files, errors


def run(args: argparse.Namespace) -> int:
    from speechconv.audio.io import AudioError, audio_info

    files, errors = _expand(args.paths)
    for message in errors:
        print(f"speechconv: {message}", file=sys.stderr)
    width = max((len("<stdin>" if f == "-" else f) for f in files), default=0)
    failed = bool(errors)
    for path in files:
        try:
            line = format_info(audio_info(path), width)
        except AudioError as err:
            failed = True
            print(f"speechconv: {err}", file=sys.stderr, flush=True)
            continue
        print(line.rstrip(), flush=True)
    return 1 if failed else 0
