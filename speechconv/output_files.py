"""Output files that never destroy anything: checked before the work, written safely, errors in one line.

- A regular file (or a new path) is written through a temporary file in the same folder and renamed
  over it on success; the new file gets the old file's mode, or ``0666 & ~umask``.
- A device, FIFO or other non-regular file (``/dev/null``, ``/dev/stdout``) is opened and written in
  place, never replaced. A symbolic link stays a link: its target is written (atomically when the target
  is a regular file).
- A read-only existing file is not overwritten. Failures raise :class:`OutputError`, printed by the CLI
  as ``speechconv: PATH: reason``. ``BrokenPipeError`` is passed on, so the caller can exit quietly.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from speechconv.errors import SpeechconvError

STDOUT_NAME = "<stdout>"


class OutputError(SpeechconvError):
    """An output file that cannot be written; the message is ``PATH: reason``."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def os_reason(err: OSError) -> str:
    """``err``'s reason without the file name: 'No space left on device'."""
    return err.strerror or str(err)


def current_umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def _writable_folder_reason(folder: str) -> str | None:
    """Why no file can be created in ``folder``, or None."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return f"folder {folder} does not exist"
    except OSError as err:
        return f"folder {folder}: {os_reason(err)}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        if _read_only_fs(folder):
            return f"folder {folder} is on a read-only file system"
        return f"permission denied (cannot create files in {folder})"
    return None


def _read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def plan_output(path: str) -> tuple[str, str]:
    """How ``path`` will be written: ``("atomic", file)`` (temporary file + rename of ``file``, the link
    target for a symbolic link) or ``("in_place", path)``. Raises :class:`OutputError` when it cannot be."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OutputError(path, "symbolic link loop") from None
        raise OutputError(path, os_reason(err)) from None
    target = os.path.realpath(path) if os.path.islink(path) else path
    if st is None:  # a new file (or a dangling link: its target is created)
        reason = _writable_folder_reason(os.path.dirname(target) or ".")
        if reason:
            raise OutputError(path, reason)
        return ("atomic", target)
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(path, "is a directory")
    if not stat.S_ISREG(st.st_mode):
        if not os.access(path, os.W_OK):
            raise OutputError(path, "permission denied")
        return ("in_place", path)
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        if _read_only_fs(path):
            raise OutputError(path, "read-only file system")
        raise OutputError(path, "file is read-only; not overwriting it")
    if _writable_folder_reason(os.path.dirname(target) or "."):
        return ("in_place", path)  # the file is writable but its folder is not: no temporary file possible
    return ("atomic", target)


def check_output(path: str) -> None:
    """Raise :class:`OutputError` unless ``path`` can be written (before any work is done)."""
    plan_output(path)


class SafeWriter:
    """A file-like ``write``/``flush`` that turns OS errors into :class:`OutputError` (EPIPE is passed on)."""

    def __init__(self, stream, name: str, on_error=None):
        self._stream = stream
        self.name = name
        self._on_error = on_error

    def _fail(self, err: OSError) -> None:
        if self._on_error is not None:
            self._on_error()
        if isinstance(err, BrokenPipeError):
            raise err
        raise OutputError(self.name, os_reason(err)) from None

    def write(self, data):
        try:
            return self._stream.write(data)
        except UnicodeEncodeError:  # a file name that is not UTF-8: write its original bytes
            self._stream.flush()
            buffer = self._stream.buffer
            written = buffer.write(data.encode(self._stream.encoding or "utf-8", "surrogateescape"))
            buffer.flush()
            return written
        except OSError as err:
            self._fail(err)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            self._fail(err)


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that the data still buffered for a closed pipe or a full
    device is dropped at exit instead of raising again ("Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in tests)
        pass


def stdout_writer() -> SafeWriter:
    """Standard output as a :class:`SafeWriter`; after a failure it is silenced (see :func:`silence_stdout`)."""
    return SafeWriter(sys.stdout, STDOUT_NAME, on_error=silence_stdout)


def _open_fd(fd: int, mode: str):
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", errors="surrogateescape", newline="")


@contextmanager
def _closed_on_error(f, path: str) -> Iterator[SafeWriter]:
    """The writer of ``f``; on any error (or interruption) ``f`` is closed before the error goes on."""
    try:
        yield SafeWriter(f, path)
    except BaseException:
        try:
            f.close()
        except OSError:
            pass
        raise


def _close(f, name: str, sync: bool) -> None:
    try:
        f.flush()
        if sync:
            os.fsync(f.fileno())
    except OSError as err:
        try:
            f.close()
        except OSError:
            pass
        raise OutputError(name, os_reason(err)) from None
    try:
        f.close()
    except OSError as err:
        raise OutputError(name, os_reason(err)) from None


@contextmanager
def open_output(path: str, mode: str = "w") -> Iterator[SafeWriter]:
    """Write ``path`` safely (see the module docstring); yields a :class:`SafeWriter`.

    If the block raises (or the process is interrupted), a regular ``path`` is untouched and the
    temporary file removed (a hard kill leaves a hidden ``.<name>.*.tmp`` file, never a partial ``path``).
    """
    how, target = plan_output(path)
    if how == "in_place":
        try:
            f = open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8", errors="surrogateescape",
                                                            newline="")
        except OSError as err:
            raise OutputError(path, os_reason(err)) from None
        with _closed_on_error(f, path) as writer:
            yield writer
        _close(f, path, sync=False)
        return
    folder = os.path.dirname(os.path.abspath(target))
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        old_mode = 0o666 & ~current_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(path, os_reason(err)) from None
    keep_tmp = False
    try:
        try:
            os.fchmod(fd, old_mode)
            f = _open_fd(fd, mode)
        except OSError as err:
            os.close(fd)
            raise OutputError(path, os_reason(err)) from None
        with _closed_on_error(f, path) as writer:
            yield writer
        _close(f, path, sync=True)
        try:
            os.replace(tmp, target)
        except OSError as err:  # the results are complete: keep them
            keep_tmp = True
            raise OutputError(path, f"{os_reason(err)}; the results are in {tmp}") from None
    except BaseException:
        if not keep_tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def write_output(path: str, data: str | bytes) -> None:
    """Write all of ``data`` to ``path`` with :func:`open_output`."""
    with open_output(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
