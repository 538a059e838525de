"""``speechconv detect`` and ``export`` outputs: never destroy a device, a link or an input; one-line errors;
no result lost; file modes; stdout for one audacity track; a closed pipe."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import error_lines, save_random_spotter

from speechconv.cli.main import main

SR = 16000


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A random-weight model with a low threshold (every file gives rows) and two short WAVs."""
    root = tmp_path_factory.mktemp("outputs")
    save_random_spotter(root)
    rng = np.random.default_rng(0)
    for name, seconds in (("a.wav", 1.0), ("b.wav", 0.5)):
        sf.write(root / name, (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
    return root


@pytest.fixture
def work(root, tmp_path, monkeypatch):
    """A fresh folder with links to the shared model and audio; the CLI runs in it, in this process."""
    for name in ("model", "a.wav", "b.wav"):
        (tmp_path / name).symlink_to(root / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # keep the CLI from changing this process's torch threads
    return tmp_path


def run_cli(*args: str, cwd, stdin=None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechconv.cli.main", *args], cwd=cwd, stdin=stdin,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=300)


def detect(*args: str) -> int:
    return main(["detect", *args, "--model", "model"])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def no_load(monkeypatch):
    """Checks must happen before any work: loading the model fails the test."""
    import speechconv.pretrained

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(speechconv.pretrained, "load_pretrained", refuse)


# --- devices, pipes and links are written in place ------------------------------------------------


def test_output_fifo_is_written_in_place_not_replaced(work):
    fifo = work / "out.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    proc = run_cli("detect", "a.wav", "--model", "model", "--output", "out.fifo", cwd=work)
    reader.join(timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received and received[0].startswith(b"file,start,end,peak,score\na.wav,")
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]


def test_output_symlinks_stay_links(work, capsys):
    (work / "target.csv").write_text("old\n")
    (work / "link.csv").symlink_to("target.csv")
    assert detect("a.wav", "--output", "link.csv") == 0
    assert os.path.islink(work / "link.csv")
    assert (work / "target.csv").read_text().startswith("file,start,end,peak,score\na.wav,")
    # a link to this process's standard output (a pipe) is written in place
    (work / "stdout.csv").symlink_to("/proc/self/fd/1")
    proc = run_cli("detect", "a.wav", "--model", "model", "--output", "stdout.csv", cwd=work)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"file,start,end,peak,score\na.wav,")
    assert os.readlink(work / "stdout.csv") == "/proc/self/fd/1"


@pytest.fixture
def full_device(work):
    """A /dev/full node in tmp_path (needs root and a file system that allows devices); never /dev/full
    itself, which a broken version would replace as root."""
    path = work / "full"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        with open(path, "w") as f:
            f.write("x")
            f.flush()
    except PermissionError:
        pytest.skip("cannot make or open a device node here (not root, or a nodev file system)")
    except OSError:
        pass  # ENOSPC: it works
    return path


def test_full_device_gives_one_line_and_stays_a_device(work, full_device, capsys):
    assert detect("a.wav", "--output", "full") == 1
    assert one_error_line(capsys) == "speechconv: full: No space left on device"
    assert stat.S_ISCHR(os.lstat(full_device).st_mode)
    with open(full_device, "wb") as f:  # standard output on a full device: one line too, no traceback
        proc = run_cli("detect", "a.wav", "--model", "model", cwd=work, stdout=f)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "speechconv: <stdout>: No space left on device\n"


# --- outputs that are inputs ----------------------------------------------------------------------


def test_output_or_plot_that_is_an_input_is_refused_before_any_work(work, capsys, monkeypatch):
    no_load(monkeypatch)
    original = (work / "a.wav").read_bytes()
    (work / "alias.wav").symlink_to(work / "a.wav")
    os.link(work / "a.wav", work / "hard.wav")
    for args in (["--output", "a.wav"], ["--plot", "a.wav"], ["--output", "alias.wav"], ["--output", "hard.wav"],
                 ["--format", "audacity", "--output", "a.wav"]):
        assert detect("a.wav", *args) == 1
        line = one_error_line(capsys)
        assert line.startswith("speechconv: ") and "is the input" in line and "refusing" in line, line
    assert detect("a.wav", "--output", "same.png", "--plot", "same.png") == 1
    assert "written by both --output and --plot" in one_error_line(capsys)
    assert (work / "a.wav").read_bytes() == original
    with open(work / "b.wav", "rb") as stdin:  # standard input redirected from the output file
        proc = run_cli("detect", "-", "--model", "model", "--output", "b.wav", cwd=work, stdin=stdin)
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1
    assert "--output is standard input" in proc.stderr.decode()


# --- output errors: before the run, one line, nothing lost ------------------------------------------


def test_output_errors_are_reported_before_the_run(work, capsys, monkeypatch):
    no_load(monkeypatch)
    (work / "folder").mkdir()
    (work / "locked.csv").write_text("keep\n")
    os.chmod(work / "locked.csv", 0o444)
    cases = [
        (["--output", "nowhere/out.csv"], "speechconv: nowhere/out.csv: folder nowhere does not exist"),
        (["--output", "folder"], "speechconv: folder: is a directory"),
        (["--output", "locked.csv"], "speechconv: locked.csv: file is read-only; not overwriting it"),
        (["--plot", "nowhere/p.png"], "speechconv: nowhere/p.png: folder nowhere does not exist"),
        (["--plot", "folder"], "speechconv: folder: is a directory"),
        (["--format", "audacity", "--output", "nowhere/l.txt"],
         "speechconv: nowhere/l_a.txt: folder nowhere does not exist"),
    ]
    for args, message in cases:
        inputs = ["a.wav", "b.wav"] if "audacity" in args else ["a.wav"]
        assert detect(*inputs, *args) == 1, args
        assert one_error_line(capsys) == message
    (work / "l_b.txt").mkdir()
    assert detect("a.wav", "b.wav", "--format", "audacity", "--output", "l.txt") == 1
    assert one_error_line(capsys) == "speechconv: l_b.txt: is a directory"
    assert (work / "locked.csv").read_text() == "keep\n"
    assert not (work / "l_a.txt").exists()


def as_nobody(function, cwd) -> str:
    """Run ``function`` in ``cwd`` in a child process without root's rights; returns repr(its result)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.chdir(cwd)  # as root: relative paths from here need no access to the private folders above
            os.setgid(65534)
            os.setuid(65534)
            result = repr(function()).encode()
        except BaseException as err:
            result = repr(err).encode()
        os.write(write, result)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data.decode()


def test_no_permission_to_write_is_reported(tmp_path, monkeypatch):
    from speechconv.output_files import OutputError, check_output

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o555)
    os.chmod(tmp_path, 0o755)

    def check():
        try:
            check_output("shared/out.csv")
        except OutputError as err:
            return str(err)
        return "writable"

    monkeypatch.chdir(tmp_path)
    message = as_nobody(check, tmp_path) if os.geteuid() == 0 else repr(check())
    assert message == "'shared/out.csv: permission denied (cannot create files in shared)'"


def test_a_failed_plot_or_label_track_keeps_the_other_results(work, capsys, monkeypatch):
    import speechconv.detect.plot
    import speechconv.output_files

    def full_disk(path, *args, **kwargs):
        raise speechconv.output_files.OutputError(path, "No space left on device")

    monkeypatch.setattr(speechconv.detect.plot, "plot_detections", full_disk)
    assert detect("a.wav", "b.wav", "--output", "out.csv", "--plot", "p.png") == 1
    rows = list(csv.reader(io.StringIO((work / "out.csv").read_text())))
    assert {row[0] for row in rows[1:]} == {"a.wav", "b.wav"}
    assert error_lines(capsys.readouterr().err) == ["speechconv: p_a.png: No space left on device",
                                                    "speechconv: p_b.png: No space left on device"]
    real_write = speechconv.output_files.write_output

    def fail_for_a(path, data):
        if path.endswith("_a.txt"):
            raise speechconv.output_files.OutputError(path, "Input/output error")
        real_write(path, data)

    monkeypatch.setattr(speechconv.output_files, "write_output", fail_for_a)
    assert detect("a.wav", "b.wav", "--format", "audacity", "--output", "l.txt") == 1
    assert error_lines(capsys.readouterr().err) == ["speechconv: l_a.txt: Input/output error"]
    assert (work / "l_b.txt").read_text().count("\thello ") >= 1


def test_a_late_output_failure_is_one_line(work, capsys, monkeypatch):
    """The folder disappears during the run: the rename fails; the results are kept in the temporary file."""
    (work / "out").mkdir()
    import speechconv.output_files

    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("out.csv"):
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(speechconv.output_files.os, "replace", replace)
    assert detect("a.wav", "--output", "out/out.csv") == 1
    line = one_error_line(capsys)
    assert line.startswith("speechconv: out/out.csv: Permission denied; the results are in ")
    kept = line.split("the results are in ")[1]
    assert open(kept).read().startswith("file,start,end,peak,score\n")


# --- modes -----------------------------------------------------------------------------------------


def test_new_outputs_respect_the_umask_and_existing_modes_are_kept(work, capsys):
    old = os.umask(0o022)
    try:
        assert detect("a.wav", "--output", "new.csv", "--plot", "new.png") == 0
        assert stat.S_IMODE(os.stat(work / "new.csv").st_mode) == 0o644
        assert stat.S_IMODE(os.stat(work / "new.png").st_mode) == 0o644
        os.umask(0o077)
        (work / "shared.csv").write_text("old\n")
        os.chmod(work / "shared.csv", 0o664)
        assert detect("a.wav", "--output", "shared.csv") == 0
        assert stat.S_IMODE(os.stat(work / "shared.csv").st_mode) == 0o664
        assert detect("a.wav", "--output", "private.csv") == 0
        assert stat.S_IMODE(os.stat(work / "private.csv").st_mode) == 0o600
    finally:
        os.umask(old)


# --- audacity on stdout, closed pipes ---------------------------------------------------------------


def test_one_audacity_track_goes_to_stdout(work, capsys):
    assert detect("a.wav", "--format", "audacity") == 0
    out = capsys.readouterr().out
    start, end, label = out.splitlines()[0].split("\t")
    assert 0 <= float(start) <= float(end) and label.startswith("hello ")
    with open(work / "a.wav", "rb") as stdin:
        proc = run_cli("detect", "-", "--model", "model", "--format", "audacity", cwd=work, stdin=stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == out


def test_a_closed_pipe_ends_the_run_quietly(work):
    proc = subprocess.Popen([sys.executable, "-m", "speechconv.cli.main", "detect", "a.wav", "b.wav",
                             "--model", "model"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first row
    _, stderr = proc.communicate(timeout=300)
    assert stderr == b""
    assert proc.returncode == 141


# --- export --out -----------------------------------------------------------------------------------


def test_export_out_is_checked_first_and_written_safely(work, capsys, monkeypatch):
    (work / "folder").mkdir()
    (work / "locked.pt").write_text("keep\n")
    os.chmod(work / "locked.pt", 0o444)
    with monkeypatch.context() as patch:
        no_load(patch)
        for out, message in (("nowhere/m.pt", "folder nowhere does not exist"), ("folder", "is a directory"),
                             ("locked.pt", "file is read-only; not overwriting it")):
            assert main(["export", "--model", "model", "--format", "torchscript", "--out", out]) == 1
            assert one_error_line(capsys) == f"speechconv: {out}: {message}"
    old = os.umask(0o022)
    try:
        assert main(["export", "--model", "model", "--format", "torchscript", "--out", "m.pt"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(work / "m.pt").st_mode) == 0o644
    assert (work / "m.pt").stat().st_size > 1000
