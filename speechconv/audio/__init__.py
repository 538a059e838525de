"""Audio I/O: load, stream, check and save audio files; find audio files in folders."""

from speechconv.audio.discover import AUDIO_EXTENSIONS, find_audio_files
from speechconv.audio.io import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioError,
    AudioInfo,
    audio_info,
    load_audio,
    save_audio,
)
from speechconv.audio.reader import iter_audio_blocks

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "audio_info",
    "find_audio_files",
    "iter_audio_blocks",
    "load_audio",
    "save_audio",
]
