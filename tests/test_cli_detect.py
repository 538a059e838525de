"""``speechconv detect`` end to end through a subprocess, against the library's own detections; JSONL
records per file and the run summary."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import default_signals, error_lines, random_spotter

from speechconv.audio import save_audio
from speechconv.cli.main import main
from speechconv.detect import detect_file
from speechconv.pretrained import default_model_available, load_pretrained, save_pretrained

SR = 16000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random-weight model (threshold = median score, so there are detections) and input files."""
    root = tmp_path_factory.mktemp("detect")
    spotter = random_spotter("hello")
    gen = torch.Generator().manual_seed(1)
    waves = {}
    for name, seconds in (("a.wav", 2.0), ("sub/b.flac", 1.5), ("sub/deeper/c.wav", 1.0)):
        wave = 0.1 * torch.randn(int(seconds * SR), generator=gen)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        save_audio(str(root / name), wave, SR, subtype="PCM_24" if name.endswith("flac") else "FLOAT")
        waves[name] = wave
    with torch.no_grad():
        scores = spotter(waves["a.wav"][None])[0, 1].numpy()
    spotter.detector["threshold"] = round(float(np.median(scores)), 4)
    save_pretrained(spotter, root / "model")
    (root / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    loaded = load_pretrained(str(root / "model"))  # as the CLI loads it (batch norm folded)
    expected = {name: detect_file(loaded, str(root / name)).events for name in waves}
    return root, spotter, expected


def run_cli(*args: str, cwd, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechconv.cli.main", "detect", *args], cwd=cwd,
                          input=stdin, capture_output=True, timeout=300)


def expected_rows(expected, names, root_prefix=""):
    rows = []
    for name in names:
        for e in expected[name]:
            rows.append([root_prefix + name, f"{e.start:.3f}", f"{e.end:.3f}", f"{e.peak:.3f}", f"{e.score:.4f}"])
    return rows


def test_csv_directory_bad_file_and_workers(setup):
    root, _, expected = setup
    proc = run_cli("a.wav", "bad.wav", "sub", "--model", "model", "--workers", "2", cwd=root)
    assert proc.returncode == 1
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "file,start,end,peak,score"
    rows = list(csv.reader(lines[1:]))
    # input order: a.wav, (bad.wav), then the folder's files sorted by path
    want = expected_rows(expected, ["a.wav"]) + expected_rows(expected, ["sub/b.flac", "sub/deeper/c.wav"])
    assert rows == want and len(rows) >= 3
    [message] = error_lines(proc.stderr)  # one line, and no progress bar: stderr is no terminal
    assert proc.stderr.decode().splitlines()[-1].startswith("speechconv: 4 files scanned, 1 failed, ")  # summary
    assert message.startswith("speechconv: bad.wav: not an audio file or corrupt header (")


def test_stdin_jsonl_to_output_file(setup):
    root, _, expected = setup
    data = (root / "a.wav").read_bytes()
    proc = run_cli("-", "--model", str(root / "model"), "--format", "jsonl", "--output", "out.jsonl",
                   cwd=root, stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b""
    [record] = [json.loads(line) for line in (root / "out.jsonl").read_text().splitlines()]  # one per file
    assert record["file"] == "-" and "error" not in record
    assert [["-", f"{e['start']:.3f}", f"{e['end']:.3f}", f"{e['peak']:.3f}", f"{e['score']:.4f}"]
            for e in record["events"]] == [["-"] + row[1:] for row in expected_rows(expected, ["a.wav"])]


def test_audacity_tracks_and_plots_per_input(setup):
    root, spotter, expected = setup
    proc = run_cli("a.wav", "sub/b.flac", "--model", "model", "--format", "audacity", "--output", "labels.txt",
                   "--plot", "scores.png", "--threshold", "0.0", "--chunk-seconds", "0.25", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    for stem in ("a", "b"):
        lines = (root / f"labels_{stem}.txt").read_text().splitlines()
        assert len(lines) == 1  # threshold 0: every frame is above it -> one event over the whole file
        start, end, label = lines[0].split("\t")
        assert 0.0 <= float(start) <= float(end) and label.startswith("hello ")
        assert (root / f"scores_{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_run_leaves_no_partial_output(setup):
    """The second input is stdin, which never ends: kill the run while it waits, after a.wav's rows
    went to the temporary file. The old output must survive and no temporary file may remain."""
    root, _, _ = setup
    out = root / "keep.csv"
    out.write_text("previous results\n")
    proc = subprocess.Popen([sys.executable, "-m", "speechconv.cli.main", "detect", "a.wav", "-", "--model",
                             "model", "--output", "keep.csv"], cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals)
    try:
        deadline = time.time() + 240
        while not any(p.name.startswith(".keep.csv.") for p in root.iterdir()):
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()
            time.sleep(0.1)
        time.sleep(1.0)  # a.wav is being processed or done; stdin is still open
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr.decode()
    assert out.read_text() == "previous results\n"
    assert not [p.name for p in root.iterdir() if p.name.startswith(".keep.csv")]


def test_argument_errors(setup, capsys, monkeypatch):
    root, _, _ = setup
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # keep the CLI from changing this process's torch threads
    assert main(["detect", "a.wav", "--model", "model", "--threshold", "1.5"]) == 1
    assert "--threshold must be in [0, 1]" in capsys.readouterr().err
    assert main(["detect", "a.wav", "sub", "--model", "model", "--format", "audacity"]) == 1
    assert "give --output" in capsys.readouterr().err
    assert main(["detect", "a.wav", "--model", "nowhere/model"]) == 1
    assert capsys.readouterr().err == "speechconv: nowhere/model: no such model directory or file\n"
    if not default_model_available():
        assert main(["detect", "a.wav"]) == 1
        assert "pass --model" in capsys.readouterr().err


def test_in_process_output_equals_stdout_format(setup, capsys, monkeypatch):
    root, _, expected = setup
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["detect", "sub", "--model", "model", "--output", "sub.csv"]) == 0
    written = (root / "sub.csv").read_text()
    assert main(["detect", "sub", "--model", "model"]) == 0
    assert capsys.readouterr().out == written
    assert list(csv.reader(io.StringIO(written)))[1:] == expected_rows(expected, ["sub/b.flac", "sub/deeper/c.wav"])
    assert not [p for p in os.listdir(root) if p.startswith(".sub.csv")]


def test_lightning_predict_gives_the_cli_events(setup, tmp_path):
    """Trainer.predict over a file list (what DDP shards over machines) = the CLI's events."""
    from speechconv.detect.predict import DetectionWriter, merge_rank_files, predict_events

    root, _, expected = setup
    files = [str(root / "a.wav"), str(root / "bad.wav"), str(root / "sub/b.flac")]
    results = predict_events(files, str(root / "model"), callbacks=[DetectionWriter(str(tmp_path / "ranks"))])
    assert [r.path for r in results] == files
    assert results[0].events == expected["a.wav"] and results[2].events == expected["sub/b.flac"]
    assert not results[1].ok and results[1].error.startswith(f"{files[1]}: ")
    assert merge_rank_files(str(tmp_path / "ranks"), str(tmp_path / "all.csv")) == 1
    rows = list(csv.reader((tmp_path / "all.csv").read_text().splitlines()))
    assert rows[0] == ["file", "start", "end", "peak", "score"]
    assert rows[1:] == expected_rows(expected, ["a.wav", "sub/b.flac"], str(root) + "/")


# --- JSONL records per file, run summary ----------------------------------------------------------------


def test_jsonl_has_one_record_per_file_with_events_or_error(setup, capsys, monkeypatch):
    """Scanned with nothing found ("events": []) differs from not scanned ("error")."""
    root, _, expected = setup
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["detect", "a.wav", "bad.wav", "sub", "--model", "model", "--format", "jsonl"]) == 1
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in records] == ["a.wav", "bad.wav", "sub/b.flac", "sub/deeper/c.wav"]
    for record in (records[0], *records[2:]):
        assert set(record) == {"file", "events"}
        assert [[f"{e[k]:.3f}" for k in ("start", "end", "peak")] + [f"{e['score']:.4f}"]
                for e in record["events"]] == [row[1:] for row in expected_rows(expected, [record["file"]])]
    assert records[1]["events"] == [] and records[1]["error"].startswith("not an audio file or corrupt header (")
    [message] = error_lines(captured.err)  # the error line as before, then the summary
    assert message == f"speechconv: bad.wav: {records[1]['error']}"
    # a threshold no frame reaches: every file still has its record, with no events
    assert main(["detect", "a.wav", "sub", "--model", "model", "--format", "jsonl", "--threshold", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records == [{"file": name, "events": []} for name in ("a.wav", "sub/b.flac", "sub/deeper/c.wav")]


def test_summary_line_on_request_and_on_a_terminal(setup, capsys, monkeypatch):
    root, _, expected = setup
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    events = sum(len(expected[name]) for name in ("a.wav", "sub/b.flac", "sub/deeper/c.wav"))
    summary = rf"speechconv: 4 files scanned, 1 failed, 4\.5 s of audio, {events} events, [\d.]+x real time"
    args = ["detect", "a.wav", "bad.wav", "sub", "--model", "model", "--output", "out.csv"]
    assert main([*args, "--summary"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("speechconv: bad.wav: ") and re.fullmatch(summary, err[1]), err
    assert main([*args, "--summary", "--quiet"]) == 1  # --summary asks for it, --quiet keeps notes out
    assert re.fullmatch(summary, capsys.readouterr().err.splitlines()[-1])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: progress bar and summary
    assert main(args) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(summary, err.splitlines()[-1]) and "file/s" in err
    for quiet in ("--quiet", "-q"):  # only the error line: no progress bar, no summary
        assert main([*args, quiet]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("speechconv: bad.wav: ")


def test_summary_line_format():
    from speechconv.cli.detect import summary_line

    assert (summary_line(12, 1, 1908.0, 7, 9.0)
            == "12 files scanned, 1 failed, 31.8 min of audio, 7 events, 212x real time")
    assert summary_line(1, 0, 7200.0, 1, 2880.0) == "1 file scanned, 0 failed, 2.00 h of audio, 1 event, 2.5x real time"
    assert (summary_line(0, 0, 0.0, 0, 0.5, folder_errors=1)
            == "0 files scanned, 0 failed, 1 folder error, 0.0 s of audio, 0 events")


def test_help_documents_the_columns_and_the_bracket_defaults():
    from speechconv.cli.main import build_parser
    from speechconv.detect import DEFAULT_KEYWORD_SECONDS, DEFAULT_PEAK_DELAY_SECONDS

    parser = build_parser()
    text = next(a for a in parser._actions if a.dest == "command").choices["detect"].format_help()
    for needed in ("end = peak - peak_delay_seconds", "start = end - keyword_seconds", "start <= end <= peak",
                   f"keyword_seconds={DEFAULT_KEYWORD_SECONDS:g}", f"peak_delay_seconds={DEFAULT_PEAK_DELAY_SECONDS:g}",
                   "one record per file", '"error": "reason"', "--quiet", "--summary", "real time"):
        assert needed in text, needed
