"""Detection over files: blocks of audio -> streaming engine -> detector -> events, file by file.

Each file is decoded in blocks (:func:`speechconv.audio.iter_audio_arrays`) and scored by a stream of
a model from either engine (:mod:`speechconv.runtime`: PyTorch or onnxruntime; a
:class:`~speechconv.streaming.KeywordSpotter` is run on PyTorch), so memory stays bounded whatever the
file length. Nothing here imports torch.
:func:`run_detection` processes a list of files in one process or in a pool of worker processes
and yields the results in input order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import stat
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from speechconv.audio import AudioError, iter_audio_arrays
from speechconv.detect.detector import Detector, Event
from speechconv.errors import ConfigError, SpeechconvError


@dataclass
class Curve:
    """What ``--plot`` draws: features, and smoothed keyword scores with their times."""

    features: np.ndarray  # (n_features, frames)
    frame_rate: float
    times: np.ndarray
    scores: np.ndarray


#: Seconds of audio per streaming step: large blocks amortise per-step costs; memory stays bounded.
DEFAULT_CHUNK_SECONDS = 120.0


@dataclass(frozen=True)
class Verify:
    """A second opinion from a phonetic search: pocketsphinx spots ``keyphrase`` around the frames where the
    model's raw score reaches ``gate`` and its evidence is added to the model's scores before the detector
    (:mod:`speechconv.detect.verify`, :mod:`speechconv.detect.fusion`). ``gate`` 0 searches all the audio."""

    keyphrase: str
    weight: float | None = None  # None: fusion.DEFAULT_WEIGHT
    pronunciations: tuple[tuple[str, str], ...] = ()
    gate: float | None = None  # None: verify.DEFAULT_GATE


@dataclass
class FileResult:
    """Events of one input, and the reason it could not be processed (fully) or None.

    A file damaged part-way (truncated, undecodable or non-finite samples) keeps the events found
    before the damage, with ``error`` set.
    """

    path: str
    events: list[Event] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio processed
    error: str | None = None
    curve: Curve | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def as_model(model):
    """``model`` as the engines give it: a :class:`KeywordSpotter` is wrapped for the PyTorch engine."""
    if hasattr(model, "open_stream"):
        return model
    from speechconv.runtime.torch_engine import TorchModel

    return TorchModel(model)


def make_detector(model, overrides: dict[str, Any] | None = None) -> Detector:
    """The model's default detector (its card's ``detector`` options), with ``overrides``."""
    return Detector.from_config(model.detector, model.output_period, **(overrides or {}))


def _scored_chunks(stream, chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray | None, np.ndarray, np.ndarray]]:
    """``(chunk, times, scores)`` for each chunk fed to ``stream``, then ``(None, ...)`` for its end."""
    for chunk in itertools.chain(chunks, [None]):  # lazily: memory stays bounded
        times, scores = stream.finish() if chunk is None else stream.feed(chunk)
        yield chunk, times, scores


def detect_chunks(
    model,
    chunks: Iterable[np.ndarray],
    detector: Detector,
    keep_curve: bool = False,
    verifier=None,
) -> tuple[list[Event], int, Curve | None]:
    """Events of one stream of 1-D chunks (numpy arrays or tensors) through ``model`` (either engine, or
    a :class:`KeywordSpotter`); returns ``(events, samples seen, curve or None)``. With ``verifier`` (a
    :class:`~speechconv.detect.verify.GatedVerifier`) the detector runs on the fused scores."""
    stream = as_model(model).open_stream()
    detector.reset()
    events: list[Event] = []
    samples = 0
    times_parts, score_parts, feature_parts = [], [], []
    for chunk, times, scores in _scored_chunks(stream, chunks):
        if chunk is not None:
            samples += chunk.shape[-1]
        if verifier is not None:
            times, scores = verifier.finish(times, scores) if chunk is None else verifier.feed(chunk, times, scores)
        smoothed = detector.smooth_next(scores)
        events.extend(detector.process_smoothed(times, smoothed))
        if keep_curve:
            times_parts.append(times)
            score_parts.append(smoothed)
            if chunk is not None:
                feature_parts.append(stream.plot_features(chunk))
    events.extend(detector.flush())
    curve = None
    if keep_curve:
        curve = Curve(
            features=np.concatenate(feature_parts, axis=-1) if feature_parts else np.zeros((0, 0)),
            frame_rate=stream.feature_rate,
            times=np.concatenate(times_parts) if times_parts else np.zeros(0),
            scores=np.concatenate(score_parts) if score_parts else np.zeros(0),
        )
    return events, samples, curve


def check_verify(model, verify: Verify):
    """The keyphrase search of ``verify`` for ``model``; a model that is not 16 kHz, pocketsphinx missing or
    a word it does not know raise :class:`ConfigError`."""
    from speechconv.detect.keyphrase import SAMPLE_RATE, KeyphraseSearch

    if model.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"--verify needs a {SAMPLE_RATE} Hz model, this one takes {model.sample_rate} Hz")
    return KeyphraseSearch(verify.keyphrase, dict(verify.pronunciations))


def detect_verified(
    model,
    chunks: Iterable[np.ndarray],
    detector: Detector,
    verify: Verify,
    keep_curve: bool = False,
) -> tuple[list[Event], int, Curve | None]:
    """:func:`detect_chunks` with a second opinion: the raw scores are fused with the keyphrase hits found
    around the candidate frames (:class:`~speechconv.detect.verify.GatedVerifier`), then the detector
    (smoothing included) runs on the fused scores. Memory stays bounded, as without it."""
    from speechconv.detect.verify import GatedVerifier

    model = as_model(model)
    verifier = GatedVerifier(check_verify(model, verify), model.sample_rate, weight=verify.weight, gate=verify.gate)
    return detect_chunks(model, chunks, detector, keep_curve, verifier)


def _reason(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


@contextmanager
def audio_source(path: str) -> Iterator[str | IO[bytes]]:
    """What the reader gets for ``path``: the path, or for a FIFO an open stream (read like stdin).

    Anything else goes to the reader, which names what is no audio file (a link loop, a device, ...).
    """
    if path == "-":
        yield path
        return
    try:
        is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        is_fifo = False  # the reader names what is wrong (missing, link loop, broken link, ...)
    if not is_fifo:
        yield path
        return
    try:
        stream = open(path, "rb")  # waits for a writer, like a pipe on stdin
    except OSError as err:
        raise AudioError(path, _reason(err)) from None
    with stream:
        if not stream.peek(1):
            raise AudioError(path, "empty pipe (FIFO): no data was written to it")
        yield stream


def reads_here(path: str) -> bool:
    """True for inputs that worker processes cannot open: standard input and pipes (FIFOs, ``/dev/fd/N``)."""
    if path == "-":
        return True
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def detect_file(
    model,
    path: str,
    overrides: dict[str, Any] | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    keep_curve: bool = False,
    verify: Verify | None = None,
) -> FileResult:
    """Detect in one file (``"-"`` = standard input) with ``model`` (either engine, or a
    :class:`KeywordSpotter`), with a second opinion when ``verify`` is given; a bad file gives a result
    with ``error`` set."""
    model = as_model(model)
    detector = make_detector(model, overrides)
    try:
        with audio_source(path) as source:
            chunks = _UntilDamage(iter_audio_arrays(source, model.sample_rate, chunk_seconds))
            if verify is None:
                events, samples, curve = detect_chunks(model, chunks, detector, keep_curve)
            else:
                events, samples, curve = detect_verified(model, chunks, detector, verify, keep_curve)
    except AudioError as err:
        return FileResult(path, error=str(err))
    error = str(chunks.error) if chunks.error is not None else None
    return FileResult(path, events, samples / model.sample_rate, error=error, curve=curve)


class _UntilDamage:
    """The chunks of a reader up to its first :class:`AudioError`, which is kept in ``error``."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self._chunks = chunks
        self.error: AudioError | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            yield from self._chunks
        except AudioError as err:
            self.error = err


# --- worker processes -------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def fix_mmap_threshold(size: int = 1 << 20) -> None:
    """Keep large audio blocks in mmap'ed memory that is returned on free (glibc only).

    glibc raises its mmap threshold after the first large block is freed, after which blocks come from
    the heap and fragment it: peak memory then creeps up with file length. A fixed threshold keeps it flat.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, size)  # M_MMAP_THRESHOLD
    except OSError:
        pass


#: Memory one worker process needs (torch, the model, a block of audio); used to cap ``--workers``.
WORKER_MEMORY_BYTES = 600 * 2**20
#: The same for the onnxruntime engine (measured: under 100 MB for any file length).
ONNX_WORKER_MEMORY_BYTES = 150 * 2**20
#: ``--workers auto`` starts one worker per this much audio: starting one (importing torch, loading
#: the model) costs a few seconds, which only pays off on long inputs.
AUDIO_SECONDS_PER_WORKER = 1800.0


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def worker_memory(engine: str = "torch") -> int:
    return ONNX_WORKER_MEMORY_BYTES if engine == "onnx" else WORKER_MEMORY_BYTES


def worker_limit(engine: str = "torch") -> tuple[int, str]:
    """The most worker processes this machine holds, and why: ``(limit, "2 CPUs, 3.1 GB available")``."""
    cpus = usable_cpus()
    memory = available_memory()
    by_memory = cpus if memory is None else max(1, memory // worker_memory(engine) - 1)  # -1: this process
    memory_text = "" if memory is None else f", {memory / 1e9:.1f} GB memory available"
    return min(cpus, by_memory), f"{cpus} CPU{'s' if cpus != 1 else ''}{memory_text}"


def estimate_audio_seconds(paths: list[str], sample: int = 32) -> float:
    """Total duration of ``paths``, from the headers of up to ``sample`` files and the size of all."""
    from speechconv.audio.io import AudioError, audio_info

    sizes = []
    for path in paths:
        try:
            sizes.append((path, os.stat(path).st_size) if path != "-" else (path, 0))
        except OSError:
            sizes.append((path, 0))
    sized = [item for item in sizes if item[1] > 0]
    if not sized:
        return 0.0
    step = max(1, len(sized) // sample)
    seconds = probed_bytes = 0.0
    for path, size in sized[::step][:sample]:
        try:
            seconds += audio_info(path).duration  # quiet about damaged MP3 frames, any file name
            probed_bytes += size
        except AudioError:  # unreadable files are reported when they are processed
            continue
    if not probed_bytes:
        return 0.0
    return seconds / probed_bytes * sum(size for _, size in sized)


def choose_workers(requested: int | None, paths: list[str], engine: str = "torch") -> tuple[int, str | None]:
    """Worker processes for ``paths``: ``requested`` (None = auto) capped by CPUs, memory and files.

    Returns ``(workers, message)``; ``message`` says why a requested count was lowered (else None).
    Auto uses one process for up to :data:`AUDIO_SECONDS_PER_WORKER` of audio, and one more per such amount.
    """
    pool_files = sum(1 for path in paths if path != "-")
    limit, why = worker_limit(engine)
    if requested is None:
        if limit <= 1 or pool_files <= 1:
            return 1, None
        wanted = int(estimate_audio_seconds(paths) // AUDIO_SECONDS_PER_WORKER)
        return max(1, min(limit, pool_files, wanted)), None
    if requested > limit:
        return limit, (f"--workers {requested} lowered to {limit} ({why}; about "
                       f"{worker_memory(engine) // 2**20} MB per worker)")
    return max(1, min(requested, pool_files)), None


def _die_with_parent(parent: int) -> None:
    """Linux: this worker is killed when the main process dies, even by SIGKILL."""
    import ctypes
    import ctypes.util
    import signal

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def _init_worker(model: str, engine: str, threads: int, parent: int) -> None:
    import signal

    from speechconv.runtime import load_model

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process stops us
    _die_with_parent(parent)
    fix_mmap_threshold()
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    _WORKER["model"] = load_model(model, engine, threads=threads)


def _worker_detect(path: str, overrides: dict[str, Any], chunk_seconds: float, keep_curve: bool,
                   verify: Verify | None = None) -> FileResult:
    return detect_file(_WORKER["model"], path, overrides, chunk_seconds, keep_curve, verify)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: pending jobs are cancelled and running workers terminated (then killed)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def run_detection(
    model,
    paths: list[str],
    overrides: dict[str, Any] | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    workers: int = 1,
    name: str | None = None,
    keep_curve: bool = False,
    verify: Verify | None = None,
) -> Iterator[FileResult]:
    """Results for ``paths`` in input order.

    ``model`` is a model of either engine (or a :class:`KeywordSpotter`). With ``workers > 1`` files are
    processed by that many processes, each loading ``name`` (the name or path ``model`` was loaded
    from) on the same engine and sharing the cores; standard input (``-``) and pipes are read by this
    process. If the consumer stops (an exception, a signal, or closing this generator), the worker
    processes are ended at once.
    """
    model = as_model(model)
    overrides = dict(overrides or {})
    make_detector(model, overrides)  # validate the options once, before any work
    if workers <= 1 or len(paths) <= 1:
        for path in paths:
            yield detect_file(model, path, overrides, chunk_seconds, keep_curve, verify)
        return
    if name is None:
        raise ValueError("workers > 1 needs the model name or path to load in each worker")
    threads = max(1, usable_cpus() // workers)
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(name, model.engine, threads, os.getpid()))
    try:
        jobs: list[Future | str] = [
            path if reads_here(path)
            else pool.submit(_worker_detect, path, overrides, chunk_seconds, keep_curve, verify)
            for path in paths
        ]
        for job in jobs:
            if isinstance(job, str):
                yield detect_file(model, job, overrides, chunk_seconds, keep_curve, verify)
                continue
            try:
                yield job.result()
            except BrokenProcessPool:
                raise SpeechconvError("a worker process died (out of memory?); try fewer --workers") from None
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
