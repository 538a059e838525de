"""Shared test fixtures."""

import os
import re
import shutil
import tempfile

import pytest
import torch

# Caches that libraries and speechconv keep under the home folder, redirected for the whole test run.
# Set when this file is imported, before test modules import matplotlib (which reads MPLCONFIGDIR once).
CACHE_VARIABLES = ("XDG_CACHE_HOME", "KOKORO_JA_CACHE", "MPLCONFIGDIR", "SPEECHCONV_CACHE")
_TEST_CACHE = tempfile.mkdtemp(prefix="speechconv-test-cache-")
_SAVED_ENV = {name: os.environ.get(name) for name in CACHE_VARIABLES}


def _point_caches_to(folder: str) -> None:
    for name in CACHE_VARIABLES:
        os.environ[name] = os.path.join(folder, name.lower())


_point_caches_to(_TEST_CACHE)


@pytest.fixture(scope="session", autouse=True)
def caches_outside_home():
    """The test suite never writes to the user's home: every cache lives in a temporary folder
    (subprocesses inherit it), removed at the end of the session."""
    _point_caches_to(_TEST_CACHE)
    yield _TEST_CACHE
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)


@pytest.fixture
def one_thread():
    """Many tiny convolutions and streaming steps: OpenMP hand-offs cost more than they save, so run them
    on one torch thread (restored afterwards). Modules opt in with ``pytestmark``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_spotter(keyword: str = "hello", threshold: float | None = None):
    """A random-weight tdnn spotter for ``keyword`` (seeded), with small smoothing and merge windows."""
    from speechconv.frontends import build_frontend
    from speechconv.models import build_model
    from speechconv.streaming import KeywordSpotter

    torch.manual_seed(0)
    detector = {"smoothing_frames": 3, "merge_seconds": 0.05, "refractory_seconds": 0.1}
    if threshold is not None:
        detector["threshold"] = threshold
    return KeywordSpotter(
        build_frontend({"name": "logmel", "n_mels": 40}),
        build_model({"name": "tdnn", "num_classes": 2}),
        ["_unknown_", keyword],
        detector,
    ).eval()


def save_random_spotter(folder, threshold: float = 0.0):
    """A random-weight tdnn spotter saved as a model directory in ``folder/model``; with the default
    threshold of 0 every file gives detections. Returns the directory."""
    from speechconv.pretrained import save_pretrained

    spotter = random_spotter(threshold=threshold)
    save_pretrained(spotter, folder / "model")
    return folder / "model"


@pytest.fixture(autouse=True)
def restore_deterministic_mode():
    """Lightning's ``deterministic=True`` switches torch's deterministic algorithms on for the whole
    process; put the mode back so later tests (e.g. max-pool gradients) see the default."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def default_signals() -> None:
    """``preexec_fn`` for subprocesses that tests signal: SIGINT, SIGHUP and SIGTERM as in a foreground
    command (a shell's background job or ``nohup`` starts children with some of them ignored)."""
    import signal

    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


_SUMMARY = re.compile(r"^speechconv: \d+ files? scanned, ")


def error_lines(stderr: str | bytes) -> list[str]:
    """The lines of a ``speechconv detect`` run's stderr without its closing summary line (which must be
    the last line when present)."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    lines = text.splitlines()
    if lines and _SUMMARY.match(lines[-1]):
        lines = lines[:-1]
    assert not any(_SUMMARY.match(line) for line in lines), "the summary is the last line"
    return lines
