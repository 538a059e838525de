"""Detection over files: blocks of audio -> streaming engine -> detector -> events, file by file.

Each file is decoded in blocks (:func:`speechconv.audio.iter_audio_blocks`) and scored by a
:class:`~speechconv.streaming.StreamingEngine`, so memory stays bounded whatever the file length.
:func:`run_detection` processes a list of files in one process or in a pool of worker processes
and yields the results in input order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from speechconv.audio import AudioError, iter_audio_blocks
from speechconv.detect.detector import Detector, Event
from speechconv.streaming import KeywordSpotter, StreamingEngine


@dataclass
class Curve:
    """What ``--plot`` draws: features, and smoothed keyword scores with their times."""

    features: np.ndarray  # (n_features, frames)
    frame_rate: float
    times: np.ndarray
    scores: np.ndarray


#: Seconds of audio per streaming step: large blocks amortise per-step costs; memory stays bounded.
DEFAULT_CHUNK_SECONDS = 120.0


@dataclass
class FileResult:
    """Events of one input, or the reason it could not be processed."""

    path: str
    events: list[Event] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio processed
    error: str | None = None
    curve: Curve | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_detector(spotter: KeywordSpotter, overrides: dict[str, Any] | None = None) -> Detector:
    """The spotter's default detector (its card's ``detector`` options), with ``overrides``."""
    return Detector.from_config(spotter.detector, spotter.output_period, **(overrides or {}))


@torch.inference_mode()
def detect_chunks(
    spotter: KeywordSpotter,
    chunks: Iterable[torch.Tensor],
    detector: Detector,
    keep_curve: bool = False,
) -> tuple[list[Event], int, Curve | None]:
    """Events of one stream of 1-D chunks; returns ``(events, samples seen, curve or None)``."""
    engine = StreamingEngine(spotter)
    detector.reset()
    events: list[Event] = []
    samples = 0
    times_parts, score_parts, feature_parts = [], [], []
    frontend_cache = None
    for chunk in chunks:
        samples += chunk.shape[-1]
        times, scores = engine.feed(chunk)
        smoothed = detector.smooth_next(scores)
        events.extend(detector.process_smoothed(times, smoothed))
        if keep_curve:
            times_parts.append(times)
            score_parts.append(smoothed)
            features, frontend_cache = spotter.frontend.forward_streaming(chunk[None].to(engine.device),
                                                                          frontend_cache)
            feature_parts.append(features[0].cpu().numpy())
    events.extend(detector.flush())
    curve = None
    if keep_curve:
        curve = Curve(
            features=np.concatenate(feature_parts, axis=-1) if feature_parts else np.zeros((0, 0)),
            frame_rate=float(spotter.frontend.frame_rate),
            times=np.concatenate(times_parts) if times_parts else np.zeros(0),
            scores=np.concatenate(score_parts) if score_parts else np.zeros(0),
        )
    return events, samples, curve


def detect_file(
    spotter: KeywordSpotter,
    path: str,
    overrides: dict[str, Any] | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    keep_curve: bool = False,
) -> FileResult:
    """Detect in one file (``"-"`` = standard input); a bad file gives a result with ``error`` set."""
    detector = make_detector(spotter, overrides)
    try:
        chunks = iter_audio_blocks(path, spotter.sample_rate, chunk_seconds)
        events, samples, curve = detect_chunks(spotter, chunks, detector, keep_curve)
    except AudioError as err:
        return FileResult(path, error=str(err))
    return FileResult(path, events, samples / spotter.sample_rate, curve=curve)


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


def _init_worker(model: str, torch_threads: int) -> None:
    from speechconv.pretrained import load_pretrained

    fix_mmap_threshold()
    torch.set_num_threads(torch_threads)
    _WORKER["spotter"] = load_pretrained(model)


def _worker_detect(path: str, overrides: dict[str, Any], chunk_seconds: float, keep_curve: bool) -> FileResult:
    return detect_file(_WORKER["spotter"], path, overrides, chunk_seconds, keep_curve)


def run_detection(
    spotter: KeywordSpotter,
    paths: list[str],
    overrides: dict[str, Any] | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    workers: int = 1,
    model: str | None = None,
    keep_curve: bool = False,
) -> Iterator[FileResult]:
    """Results for ``paths`` in input order.

    With ``workers > 1`` files are processed by that many processes, each loading ``model`` (the
    name or path ``spotter`` was loaded from) and using one torch thread; standard input (``-``)
    is always read by this process.
    """
    overrides = dict(overrides or {})
    make_detector(spotter, overrides)  # validate the options once, before any work
    if workers <= 1 or len(paths) <= 1:
        for path in paths:
            yield detect_file(spotter, path, overrides, chunk_seconds, keep_curve)
        return
    if model is None:
        raise ValueError("workers > 1 needs the model name or path to load in each worker")
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(model, threads)) as pool:
        jobs: list[Future | str] = [
            path if path == "-" else pool.submit(_worker_detect, path, overrides, chunk_seconds, keep_curve)
            for path in paths
        ]
        try:
            for job in jobs:
                if isinstance(job, str):
                    yield detect_file(spotter, job, overrides, chunk_seconds, keep_curve)
                else:
                    yield job.result()
        except BaseException:
            for job in jobs:
                if isinstance(job, Future):
                    job.cancel()
            raise
