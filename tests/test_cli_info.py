"""``speechconv info``: one line per file, errors on stderr, exit status."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechconv.audio import AUDIO_EXTENSIONS, AudioInfo
from speechconv.cli.info import format_info
from speechconv.cli.main import main


def run_info(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "speechconv.cli.main", "info", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def parse_line(line: str) -> tuple[str, dict[str, str]]:
    path, fields = re.match(r"^(.*?) +(duration=.*)$", line).groups()
    return path, dict(re.findall(r"(\w+)=(\S+)", fields))


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Faster than a subprocess for cases that do not need a real stdin."""
    code = main(["info", *args])
    out, err = capsys.readouterr()
    return code, out, err


def make_files(folder) -> dict[str, tuple[int, int, int, str]]:
    """Write test files; return path -> (rate, channels, frames, subtype)."""
    specs = {
        "a.wav": (16000, 1, 19744, "PCM_16"),
        "sub/b.flac": (44100, 2, 44100, "PCM_24"),
        "sub/deeper/c.wav": (8000, 6, 1234, "FLOAT"),
    }
    files = {}
    for rel, (rate, channels, frames, subtype) in specs.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros((frames, channels)), rate, subtype=subtype)
        files[str(path)] = (rate, channels, frames, subtype)
    return files


def test_lists_good_files_and_reports_one_bad_file(tmp_path):
    files = make_files(tmp_path)
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio\n" * 10)
    paths = list(files)
    ordered = [paths[0], str(bad), *paths[1:]]

    result = run_info(*ordered)

    assert result.returncode == 1
    stderr = result.stderr.decode().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith(f"speechconv: {bad}: not an audio file")
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(files)
    for line, path in zip(lines, paths):
        got_path, values = parse_line(line)
        rate, channels, frames, subtype = files[path]
        assert got_path == path
        assert values["rate"] == str(rate)
        assert values["channels"] == str(channels)
        assert values["frames"] == str(frames)
        assert values["subtype"] == subtype
        assert values["duration"] == f"{frames / rate:.3f}s"
    # Columns are aligned: every "duration=" starts at the same offset.
    assert len({line.index("duration=") for line in lines}) == 1


def test_folders_are_expanded_and_exit_zero(tmp_path, capsys):
    files = make_files(tmp_path)
    (tmp_path / "notes.txt").write_text("ignored")

    code, out, err = main_in_process(capsys, str(tmp_path))

    assert code == 0, err
    assert err == ""
    assert [parse_line(line)[0] for line in out.splitlines()] == sorted(files)


def test_missing_file_and_empty_folder_fail_with_one_line_each(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    missing = tmp_path / "missing.wav"

    code, out, err = main_in_process(capsys, str(missing), str(tmp_path / "empty"))

    assert code == 1
    assert err.splitlines() == [
        f"speechconv: {tmp_path / 'empty'}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder",
        f"speechconv: {missing}: no such file",
    ]
    assert out == ""


def test_dash_reads_stdin():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((4000, 2)), 8000, format="WAV", subtype="PCM_16")

    result = run_info("-", stdin=buffer.getvalue())

    assert result.returncode == 0, result.stderr.decode()
    path, values = parse_line(result.stdout.decode().strip())
    assert path == "<stdin>"
    assert values == {
        "duration": "0.500s",
        "rate": "8000",
        "channels": "2",
        "format": "WAV",
        "subtype": "PCM_16",
        "frames": "4000",
    }


def test_format_info_line():
    info = AudioInfo("x.wav", 1.2344, 16000, 1, 19750, "WAV", "PCM_16")
    assert format_info(info, width=7) == (
        "x.wav    duration=1.234s  rate=16000  channels=1  format=WAV  subtype=PCM_16  frames=19750"
    )


def test_help_documents_the_output(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["info", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "duration=" in out and "stderr" in out and "exit status is 1" in out
