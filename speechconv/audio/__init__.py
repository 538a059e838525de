"""Audio I/O: load, stream, check and save audio files; find audio files in folders.

Names are imported on first use, so that ``speechconv.audio.discover`` (file discovery, used by
every command's ``--help``) does not load numpy and libsndfile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speechconv.lazy import lazy_names

_WHERE = {
    "AUDIO_EXTENSIONS": "discover",
    "find_audio_files": "discover",
    "MAX_SAMPLE_RATE": "io",
    "MIN_SAMPLE_RATE": "io",
    "AudioError": "io",
    "AudioInfo": "io",
    "TruncatedAudio": "io",
    "audio_info": "io",
    "load_audio": "io",
    "load_audio_array": "io",
    "save_audio": "writer",
    "iter_audio_blocks": "reader",
    "iter_audio_arrays": "reader",
}

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "TruncatedAudio",
    "audio_info",
    "find_audio_files",
    "iter_audio_arrays",
    "iter_audio_blocks",
    "load_audio",
    "load_audio_array",
    "save_audio",
]

if TYPE_CHECKING:
    from speechconv.audio.discover import AUDIO_EXTENSIONS, find_audio_files
    from speechconv.audio.io import (
        MAX_SAMPLE_RATE,
        MIN_SAMPLE_RATE,
        AudioError,
        AudioInfo,
        TruncatedAudio,
        audio_info,
        load_audio,
        load_audio_array,
    )
    from speechconv.audio.reader import iter_audio_arrays, iter_audio_blocks
    from speechconv.audio.writer import save_audio


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
