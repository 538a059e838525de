"""`speechconv info` (and every reader of paths) names what a path is when it is not an audio file."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from speechconv.audio import AudioError, audio_info, save_audio
from speechconv.cli.main import main


@pytest.mark.parametrize("kind, message", [
    ("fifo", "named pipe (FIFO)"), ("loop", "symbolic link loop"), ("broken", "broken symbolic link"),
    ("missing", "no such file"), ("folder", "is a directory"), ("empty", "empty file"),
])
def test_paths_that_are_no_audio_file_are_named(tmp_path, capsys, kind, message):
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink(tmp_path / "loop2", path)
        os.symlink(path, tmp_path / "loop2")
    elif kind == "broken":
        os.symlink(tmp_path / "nowhere.wav", path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(AudioError, match=re.escape(message)):
        audio_info(str(path))
    if kind == "folder":  # `info` searches folders for audio files instead
        return
    good = tmp_path / "good.wav"
    save_audio(good, np.zeros(1600, dtype=np.float32), 16000)
    assert main(["info", str(path), str(good)]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and "good.wav" in captured.out
