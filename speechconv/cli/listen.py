"""``speechconv listen``: detect the keyword live from the microphone, one line per detection.

The microphone is read with ``sounddevice`` (optional extra: ``pip install speechconv[listen]``);
any iterable of 1-D float32 chunks at the model's sample rate can stand in for it (see
:func:`listen_stream`), which is how the tests drive it.
"""

from __future__ import annotations

import argparse
import queue
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from speechconv.errors import ConfigError, SpeechconvError

if TYPE_CHECKING:
    from collections.abc import Sequence


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listen",
        help="detect the keyword live from the microphone",
        description="Detect the keyword live from the microphone (needs: pip install speechconv[listen]). "
        "Prints one line per detection: stream time of the peak, keyword, score. Ctrl-C stops. "
        "With --verify (see speechconv detect --help), pocketsphinx searches the audio around each moment the "
        "model's raw score reaches the gate, once 0.5 s have passed without another, so detections come about "
        "0.5 s (plus the search) later than without it.",
    )
    from speechconv.cli.detect import add_model_options, add_verify_options

    add_model_options(parser)
    add_verify_options(parser)
    parser.add_argument("--device", default=None, help="input device name or index (default: the system's)")
    parser.add_argument("--block-seconds", type=float, default=0.1, metavar="S",
                        help="audio block length; detections lag by about this much (default: 0.1)")
    parser.set_defaults(func=run)


def import_sounddevice():
    try:
        import sounddevice
    except ImportError as err:
        raise SpeechconvError(
            f"listening to a microphone needs the 'sounddevice' package ({err}); "
            "install it with: pip install speechconv[listen]"
        ) from None
    return sounddevice


def microphone_blocks(
    sample_rate: int, block_seconds: float, device: str | int | None = None
) -> Iterator[np.ndarray]:
    """Mono float32 blocks from an input device, as they are recorded (until the iterator is closed).

    The device is opened here, so a missing ``sounddevice`` or a bad device is reported at once."""
    sd = import_sounddevice()
    blocks: queue.Queue = queue.Queue()

    def on_block(indata, frames, time_info, status) -> None:
        if status:
            print(f"speechconv: audio input: {status}", file=sys.stderr)
        blocks.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", device=device,
                                blocksize=max(1, int(block_seconds * sample_rate)), callback=on_block)
    except Exception as err:  # PortAudioError, ValueError for unknown devices
        raise SpeechconvError(f"cannot open audio input {device if device is not None else '(default)'}: {err}") \
            from None
    return _recorded(stream, blocks)


def _recorded(stream, blocks: queue.Queue) -> Iterator[np.ndarray]:
    with stream:
        while True:
            yield blocks.get()


#: Where ``run`` gets its audio; tests replace it with a fake stream.
open_input: Callable[..., Iterable[Sequence[float]]] = microphone_blocks


def listen_stream(model, blocks: Iterable, detector, on_event: Callable, verifier=None) -> int:
    """Feed ``blocks`` (1-D arrays or tensors) through one stream of ``model`` (either engine, or a
    :class:`KeywordSpotter`) and the detector, calling ``on_event(event)`` as each detection becomes final
    (and for the last one when the stream ends or is interrupted). With ``verifier`` (a
    :class:`~speechconv.detect.verify.GatedVerifier`), the detector sees the fused scores as each candidate
    span is searched. Returns the number of detections."""
    from speechconv.detect.runner import as_model

    stream = as_model(model).open_stream()
    detector.reset()
    count = 0
    try:
        for block in blocks:
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            times, scores = stream.feed(block)
            if verifier is not None:
                times, scores = verifier.feed(block, times, scores)
            for event in detector.process(times, scores):
                on_event(event)
                count += 1
        times, scores = stream.finish()
        if verifier is not None:
            times, scores = verifier.finish(times, scores)
        for event in detector.process(times, scores):
            on_event(event)
            count += 1
    finally:
        for event in detector.flush():
            on_event(event)
            count += 1
    return count


def format_live(event, keyword: str) -> str:
    return f"{event.peak:10.3f} s  {keyword}  score={event.score:.4f}  ({event.start:.3f}-{event.end:.3f} s)"


def run(args: argparse.Namespace) -> int:
    from speechconv.cli.detect import (
        check_verify_args,
        resolve_model,
        use_one_thread_unless_configured,
        verify_from_args,
    )
    from speechconv.detect import make_detector
    from speechconv.runtime import load_model, resolve_engine

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    check_verify_args(args)
    if not args.block_seconds > 0:
        raise ConfigError(f"--block-seconds must be > 0, got {args.block_seconds}")
    if open_input is microphone_blocks:
        import_sounddevice()  # before loading the model and saying we listen
    from speechconv.runtime.engines import whisper_model_dir

    name = resolve_model(args.model)
    engine = "whisper" if whisper_model_dir(name) is not None else resolve_engine(args.engine)  # no torch import
    threads = use_one_thread_unless_configured(engine)
    spotter = load_model(name, engine, threads, live=True)  # whisper: short pieces
    detector = make_detector(spotter, {"threshold": args.threshold})
    verify, search = verify_from_args(args, spotter)
    verifier = None
    if verify is not None:
        from speechconv.detect.verify import GatedVerifier

        verifier = GatedVerifier(search, spotter.sample_rate, weight=verify.weight, gate=verify.gate)
    device = int(args.device) if isinstance(args.device, str) and args.device.isdigit() else args.device
    blocks = open_input(spotter.sample_rate, args.block_seconds, device)
    checked = f", verified by pocketsphinx (gate {verifier.gate:g})" if verifier is not None else ""
    print(f"listening for '{spotter.keyword}' (threshold {detector.threshold:g}{checked}); Ctrl-C stops",
          file=sys.stderr)

    def show(event) -> None:
        print(format_live(event, spotter.keyword), flush=True)

    try:
        listen_stream(spotter, blocks, detector, show, verifier)
    except KeyboardInterrupt:
        pass
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    return 0
