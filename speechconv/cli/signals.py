"""SIGTERM and SIGHUP as an exception, so that a command unwinds (temporary files removed, worker
processes ended, children told to stop) and exits with 128 + the signal number."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (removing temporary files, ending workers) and exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """While in this block, SIGTERM and SIGHUP raise :class:`Terminated` (unless they are ignored, as
    under nohup); after the first one they are ignored, so the clean-up runs to its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def stop(signum, frame):
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        raise Terminated(signum)

    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) == signal.SIG_DFL:
            previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
