"""``speechconv detect`` stopped by signals, a closed pipe or a killed parent: no worker process remains,
no temporary file is left, the old output survives; and the number of workers is chosen and capped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import default_signals, error_lines, save_random_spotter

from speechconv.cli.main import main
from speechconv.detect import runner

SR = 16000
LONG_SECONDS = 1200  # long enough that no run ends before the signal


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    save_random_spotter(root)
    rng = np.random.default_rng(0)
    for name in ("long1.wav", "long2.wav"):
        wave = (3000 * rng.standard_normal(LONG_SECONDS * SR // 100)).astype(np.int16)
        sf.write(root / name, np.tile(wave, 100), SR, subtype="PCM_16")
    sf.write(root / "short.wav", (0.1 * rng.standard_normal(SR)).astype(np.float32), SR)
    return root


def children_of(pid: int) -> set[int]:
    """All live descendants of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = set(), [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds: float, proc) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def assert_gone(pids: set[int], seconds: float = 15) -> None:
    deadline = time.time() + seconds
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "worker processes outlived the run"


def start(root, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechconv.cli.main", "detect", *args, "--model", "model"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals)


def two_workers_possible() -> bool:
    return runner.worker_limit()[0] >= 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("workers", [1, 2])
def test_signal_ends_workers_and_leaves_no_temporary_file(root, signum, workers):
    if workers > 1 and not two_workers_possible():
        pytest.skip("this machine cannot hold two workers")
    out = root / f"out_{signum}_{workers}.csv"
    out.write_text("previous results\n")
    proc = start(root, "long1.wav", "long2.wav", "--workers", str(workers), "--chunk-seconds", "5",
                 "--output", out.name)
    try:
        wait_until(lambda: any(p.startswith(f".{out.name}.") for p in os.listdir(root)), 120, proc)
        if workers > 1:
            wait_until(lambda: len(children_of(proc.pid)) >= workers, 120, proc)
        time.sleep(1.0)
        descendants = children_of(proc.pid)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr.decode()
    assert stderr.decode() == f"speechconv: stopped by {signal.Signals(signum).name}\n"
    assert out.read_text() == "previous results\n"
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]
    assert_gone(descendants)


def test_closed_pipe_ends_the_workers_too(root):
    if not two_workers_possible():
        pytest.skip("this machine cannot hold two workers")
    proc = start(root, "short.wav", "long1.wav", "long2.wav", "--workers", "2", "--chunk-seconds", "5")
    try:
        assert proc.stdout.readline() == b"file,start,end,peak,score\n"
        wait_until(lambda: len(children_of(proc.pid)) >= 2, 120, proc)
        descendants = children_of(proc.pid)
        proc.stdout.close()  # the next rows (short.wav's, soon) meet a closed pipe
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert (proc.returncode, stderr) == (141, b"")
    assert_gone(descendants)


def test_killed_main_process_takes_its_workers_along(root):
    if not two_workers_possible():
        pytest.skip("this machine cannot hold two workers")
    proc = start(root, "long1.wav", "long2.wav", "--workers", "2", "--chunk-seconds", "5")
    try:
        wait_until(lambda: len(children_of(proc.pid)) >= 2, 120, proc)
        time.sleep(2.0)  # the workers have set up their parent-death signal
        descendants = children_of(proc.pid)
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert_gone(descendants)


# --- how many workers -----------------------------------------------------------------------------------


def test_workers_are_capped_by_memory_and_cpus(monkeypatch):
    monkeypatch.setattr(runner, "usable_cpus", lambda: 8)
    monkeypatch.setattr(runner, "available_memory", lambda: 2 * runner.WORKER_MEMORY_BYTES + 1)
    workers, message = runner.choose_workers(6, [f"{i}.wav" for i in range(10)])
    assert workers == 1
    assert message.startswith("--workers 6 lowered to 1 (8 CPUs, ") and "about 600 MB per worker" in message
    monkeypatch.setattr(runner, "available_memory", lambda: 100 * runner.WORKER_MEMORY_BYTES)
    assert runner.choose_workers(6, [f"{i}.wav" for i in range(10)]) == (6, None)
    assert runner.choose_workers(20, ["a.wav"])[0] == 8
    assert runner.choose_workers(4, ["a.wav", "b.wav"]) == (2, None)  # no more processes than files


def test_auto_workers_follow_the_amount_of_audio(root, monkeypatch):
    files = [str(root / "short.wav"), str(root / "long1.wav")]
    assert runner.estimate_audio_seconds(files) == pytest.approx(1 + LONG_SECONDS, rel=0.01)
    monkeypatch.setattr(runner, "usable_cpus", lambda: 4)
    monkeypatch.setattr(runner, "available_memory", lambda: 100 * runner.WORKER_MEMORY_BYTES)
    assert runner.choose_workers(None, files) == (1, None)  # 20 minutes: one process is faster
    monkeypatch.setattr(runner, "estimate_audio_seconds", lambda paths: 10 * 3600.0)
    assert runner.choose_workers(None, [f"{i}.wav" for i in range(3)]) == (3, None)
    assert runner.choose_workers(None, [f"{i}.wav" for i in range(30)]) == (4, None)


def test_cli_says_when_it_lowers_workers(root, capsys, monkeypatch):
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(runner, "available_memory", lambda: runner.WORKER_MEMORY_BYTES)
    assert main(["detect", "short.wav", "short.wav", "--model", "model", "--workers", "64"]) == 0
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("speechconv: --workers 64 lowered to 1 (")
