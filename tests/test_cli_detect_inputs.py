"""``speechconv detect`` inputs: folder search (links, loops, unreadable folders, linear time), pipes and
odd paths with the right message, one-line errors for any file name, option bounds and help; ``listen``."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import error_lines, save_random_spotter

from speechconv.cli.main import build_parser, main

SR = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    save_random_spotter(root)
    return root / "model"


@pytest.fixture
def work(model, tmp_path, monkeypatch):
    (tmp_path / "model").symlink_to(model)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def wav(path, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32), SR)


def detect(*args: str) -> int:
    return main(["detect", *args, "--model", "model"])


def rows_by_file(out: str) -> set[str]:
    return {line.split(",")[0] for line in out.splitlines()[1:]}


def no_load(monkeypatch):
    import speechconv.pretrained

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(speechconv.pretrained, "load_pretrained", refuse)


# --- folders -------------------------------------------------------------------------------------------


def test_symlinked_folders_are_followed_once_and_loops_reported(work, capsys):
    wav(work / "data/a.wav")
    wav(work / "elsewhere/b.wav")
    (work / "data/linked").symlink_to(work / "elsewhere")
    (work / "data/loop").symlink_to(work / "data")
    assert detect("data") == 0
    captured = capsys.readouterr()
    assert rows_by_file(captured.out) == {"data/a.wav", "data/linked/b.wav"}
    assert error_lines(captured.err) == ["speechconv: data/loop: skipped, links to a folder already searched (data)"]


def test_unreadable_subfolder_is_reported(work, capsys, monkeypatch):
    wav(work / "data/a.wav")
    wav(work / "data/locked/b.wav")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert detect("data") == 1
    captured = capsys.readouterr()
    assert rows_by_file(captured.out) == {"data/a.wav"}
    assert error_lines(captured.err) == ["speechconv: data/locked: cannot list folder (Permission denied); "
                                         "its files are skipped"]


def test_folder_expansion_is_linear(work, capsys, monkeypatch):
    """40k files took 10 s (a list searched once per file); now a fraction of a second."""
    import speechconv.detect.runner

    folder = work / "many"
    folder.mkdir()
    for i in range(30000):
        (folder / f"{i:05d}.wav").touch()
    seen = []

    def run_detection(spotter, files, *args, **kwargs):
        seen.extend(files)
        yield from ()

    monkeypatch.setattr(speechconv.detect.runner, "run_detection", run_detection)
    started = time.perf_counter()
    assert detect("many", "many", "--workers", "1") == 0
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, f"{elapsed:.1f} s"  # the model load included
    assert len(seen) == 30000 and seen[0] == os.path.join("many", "00000.wav")


# --- odd inputs ------------------------------------------------------------------------------------------


def test_named_pipe_is_read_like_stdin_and_odd_paths_say_what_they_are(work, capsys):
    wav(work / "a.wav")
    data = (work / "a.wav").read_bytes()
    os.mkfifo(work / "pipe.wav")
    os.mkfifo(work / "empty.wav")

    def feed():
        with open(work / "pipe.wav", "wb") as f:
            f.write(data)
        with open(work / "empty.wav", "wb"):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    (work / "loop1.wav").symlink_to("loop2.wav")
    (work / "loop2.wav").symlink_to("loop1.wav")
    (work / "dangling.wav").symlink_to("gone.wav")
    assert detect("a.wav", "pipe.wav", "empty.wav", "loop1.wav", "dangling.wav", "/dev/zero") == 1
    writer.join(timeout=30)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    a_rows = [line.split(",", 1)[1] for line in lines if line.startswith("a.wav,")]
    assert a_rows and a_rows == [line.split(",", 1)[1] for line in lines if line.startswith("pipe.wav,")]
    assert error_lines(captured.err) == [
        "speechconv: empty.wav: empty pipe (FIFO): no data was written to it",
        "speechconv: loop1.wav: symbolic link loop",
        "speechconv: dangling.wav: broken symbolic link (its target does not exist)",
        "speechconv: /dev/zero: is a device, not an audio file",
    ]


def test_error_lines_stay_one_line_whatever_the_file_name(work, capsys):
    (work / "bad\nname.wav").write_bytes(b"RIFF....WAVEjunk")
    (work / "data").mkdir()
    (work / "data/evil\r\x1b[2Jname.wav").write_bytes(b"junk")
    assert detect("bad\nname.wav", "data") == 1
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 2
    assert err[0].startswith("speechconv: bad\\nname.wav: not an audio file")
    assert err[1].startswith("speechconv: data/evil\\r\\x1b[2Jname.wav: ")


def test_a_file_damaged_part_way_keeps_the_rows_before_the_damage(work, capsys):
    wave = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    wave[int(1.6 * SR)] = np.nan
    sf.write(work / "nan.wav", wave, SR, subtype="FLOAT")
    assert detect("nan.wav", "--chunk-seconds", "0.5") == 1
    captured = capsys.readouterr()
    rows = [line.split(",") for line in captured.out.splitlines()[1:]]
    assert rows and all(row[0] == "nan.wav" and float(row[2]) <= 1.5 for row in rows)
    [line] = error_lines(captured.err)
    assert line.startswith("speechconv: nan.wav: ")


# --- options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e-5", "1e9", "nan", "0"])
def test_chunk_seconds_has_bounds(work, capsys, monkeypatch, value):
    wav(work / "a.wav")
    no_load(monkeypatch)
    assert detect("a.wav", "--chunk-seconds", value) == 1
    err = capsys.readouterr().err
    assert err.startswith("speechconv: --chunk-seconds must be between 0.1 and 600 seconds, got ")
    assert err.count("\n") == 1


def test_every_detect_option_has_help_with_its_default():
    parser = build_parser()
    detect_parser = next(a for a in parser._actions if a.dest == "command").choices["detect"]
    for action in detect_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and "default" in action.help, action.option_strings
    text = detect_parser.format_help()
    assert "SIGTERM" in text and "atomically" in text and "--workers auto" in text


# --- listen ----------------------------------------------------------------------------------------------


def test_listen_checks_sounddevice_before_it_listens(work, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now raises ImportError
    no_load(monkeypatch)
    assert main(["listen", "--model", "model"]) == 1
    err = capsys.readouterr().err
    assert "listening for" not in err and err.count("\n") == 1
    assert "pip install speechconv[listen]" in err
