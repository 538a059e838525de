"""``speechconv detect``: find the keyword in audio files; one CSV row per detection (or one JSONL
record per file, or an Audacity label track per file), and a one-line run summary on stderr."""

from __future__ import annotations

import argparse
import math
import os
import signal
import stat
import sys
import time
from contextlib import ExitStack
from typing import Any

from speechconv.audio.discover import AUDIO_EXTENSIONS
from speechconv.cli.signals import Terminated, signals_stop_the_run
from speechconv.errors import ConfigError

MIN_CHUNK_SECONDS = 0.1
MAX_CHUNK_SECONDS = 600.0

EPILOG = f"""\
columns (times in seconds from the start of the file, 3 decimals):
  start, end  where the spoken keyword is: end = peak - peak_delay_seconds, start = end - keyword_seconds,
              clipped at 0 (so start <= end <= peak): the labels cover the spoken word. Both values are
              the model's detector options (measured on known word times); a model without them gets
              keyword_seconds=0.6 and peak_delay_seconds=0.05
  peak        the detection time: the frame where the smoothed score is highest (the model has heard the
              keyword by then)
  score       the smoothed keyword posterior at the peak, in [0, 1] (4 decimals)

output (stdout unless --output):
  csv       header file,start,end,peak,score, then one row per detection
  jsonl     one record per file, also for files with no detection and files that failed:
              {{"file": ..., "events": [{{"start": ..., "end": ..., "peak": ..., "score": ...}}, ...]}}
            a file that could not be read (fully) adds "error": "reason" (a file damaged part-way keeps
            the events before the damage), so "scanned, nothing found" ("events": []) differs from
            "not scanned"
  audacity  start<TAB>end<TAB>label: a label track per input. With one input it goes to stdout or --output;
            with several, --output is needed and names one track per input, OUT_<input stem>.txt
            (likewise --plot: PLOT_<input stem>.png).

summary: at the end of a run, one line on stderr, e.g.
  speechconv: 12 files scanned, 1 failed, 31.8 min of audio, 7 events, 210x real time
after any error lines. --quiet leaves out the progress bar (shown only on a terminal), notes (such as a
lowered --workers) and, unless --summary is given, the summary; errors are always printed.

inputs: folders are searched recursively for {" ".join(AUDIO_EXTENSIONS)} files, following
symbolic links (a link back to a folder already searched is skipped with a note); a folder that cannot
be listed is reported. '-' reads one file from standard input (its rows name the file '-'), and a named
pipe is read like it. A file that cannot be read prints 'speechconv: FILE: reason' on stderr (control
characters in names escaped, e.g. \\n), the other files are still processed, and the exit status is 1.
A file damaged part-way (truncated, undecodable or non-finite samples) keeps the rows found before
the damage, then prints its error line.

outputs: checked before any work: a missing folder, a directory, a read-only file, no permission or an
output that is one of the inputs stops the run with one line. A regular --output file is written
atomically (temporary file + rename; a new file gets the umask's mode, an existing one keeps its mode);
devices and pipes are written in place, never replaced, and a symbolic link stays a link (its target is
written). A late failure prints 'speechconv: FILE: reason' and exit status 1; a failed --plot or label
track does not stop the other outputs. A closed pipe (| head) ends the run quietly (status 141).

verify: --verify fuses each score frame p with pocketsphinx's keyphrase hits (an acoustic model trained on
real speech): sigmoid(logit(p) + W * evidence), where evidence is the best hit's log10 likelihood ratio
(keyphrase against a free phone loop) within 0.1 s before to 0.5 s after the hit, and -80 where none is.
The detector then runs on the fused scores, with the same threshold (--threshold or the model's): a hit
with ratio 1 leaves a score as it was. pocketsphinx only searches within 0.5 s of the frames whose raw
score reaches --verify-gate (and 1 s before); elsewhere the evidence is -80. On the real-speaker wake-word
benchmark (recipes/wakeword_benchmark) it cut the misses at <= 1 false alarm per hour from 45% to 30%,
each keyword's weight chosen on the others; the threshold for a given false-alarm rate moves, so measure
it on your own negatives. pip install "speechconv[verify]" installs pocketsphinx.

signals: SIGTERM and SIGHUP (SIGINT too) stop the run and its worker processes, remove temporary files
and keep an existing --output file; the exit status is 128 + the signal number.

speed: audio is scored in blocks of --chunk-seconds (large blocks let the cores share each step; memory
stays bounded whatever the file length). --workers N processes files in N processes; each loads
the model (with PyTorch a few seconds and about 600 MB, with onnxruntime under 150 MB), so N is lowered
to what the CPUs and the available memory hold. --workers auto (the default) uses one process unless
there is more than an hour of audio. The cores are shared among the processes (OMP_NUM_THREADS, when
set, decides instead; the --engine option chooses PyTorch or onnxruntime, see --help)."""


def workers_arg(text: str) -> int | None:
    """``auto`` (or 0) -> None, else a positive integer."""
    if text.strip().lower() in ("auto", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'auto', got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect the keyword in audio files",
        description="Detect the keyword in audio files with a streaming keyword spotter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio file, folder (searched recursively), named pipe, or '-' for standard input")
    add_model_options(parser)
    parser.add_argument("--format", choices=("csv", "jsonl", "audacity"), default="csv",
                        help="output format: csv, jsonl or audacity label track, see below (default: csv)")
    parser.add_argument("--output", default=None, metavar="FILE",
                        help="write the detections to FILE (default: standard output); with --format audacity "
                        "and several inputs, one file per input (labels.txt -> labels_<input stem>.txt)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="also save spectrogram, score curve, threshold and detections as a PNG, one per input "
                        "when there are several (plot.png -> plot_<input stem>.png) (default: no plot)")
    parser.add_argument("--chunk-seconds", type=float, default=120.0, metavar="S",
                        help=f"audio is read and scored in blocks of S seconds, {MIN_CHUNK_SECONDS:g} to "
                        f"{MAX_CHUNK_SECONDS:g}; results do not depend on it (default: 120)")
    parser.add_argument("--workers", type=workers_arg, default=None, metavar="N",
                        help="files processed in parallel by N processes, lowered to what the CPUs and memory "
                        "hold; 'auto' or 0 chooses from the amount of audio (default: auto)")
    add_verify_options(parser)
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print only errors on stderr: no progress bar, notes or summary line (default: off)")
    parser.add_argument("--summary", action="store_true",
                        help="print the one-line run summary even with --quiet (default: printed unless --quiet)")
    parser.set_defaults(func=run)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--threshold`` and ``--engine``, as detect and listen take them."""
    parser.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                        help="pretrained model: bundled name (hello: a keyword head on Whisper's encoder; "
                        "hello_small: TC-ResNet8), model directory, exported .onnx file (onnx engine) "
                        "or Lightning .ckpt (torch engine) (default: hello)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="score threshold in [0, 1] (default: the model's)")
    parser.add_argument("--engine", choices=("auto", "torch", "onnx"), default="auto",
                        help="torch: the PyTorch model; onnx: its exported streaming step (model.onnx) on "
                        "onnxruntime, no PyTorch needed; the same events, scores within 1e-4. auto: torch when "
                        "it is installed, else onnx (default: auto). Whisper-head models such as hello always run "
                        "their encoder on CTranslate2 and their head on onnxruntime")


def add_verify_options(parser: argparse.ArgumentParser) -> None:
    """``--verify`` and its options, as detect and listen take them."""
    parser.add_argument("--verify", action="store_true",
                        help="second opinion: pocketsphinx searches the audio around the model's candidates for "
                        "the keyphrase and its evidence is added to the model's scores; fewer misses on real "
                        "voices at the same false alarms (needs speechconv[verify]; see speechconv detect --help) "
                        "(default: off)")
    parser.add_argument("--keyphrase", default=None, metavar="TEXT",
                        help="with --verify: the words pocketsphinx searches for (default: the model's keyword)")
    parser.add_argument("--verify-weight", type=float, default=None, metavar="W",
                        help="with --verify: weight of pocketsphinx's evidence, >= 0 (default: "
                        "speechconv.detect.fusion.DEFAULT_WEIGHT, 0.075)")
    parser.add_argument("--verify-gate", type=float, default=None, metavar="G",
                        help="with --verify: pocketsphinx searches within 0.5 s of the frames whose raw score "
                        "reaches G, in [0, 1]; 0 searches all the audio (default: "
                        "speechconv.detect.verify.DEFAULT_GATE, 0.2)")


def check_verify_args(args: argparse.Namespace) -> None:
    given = [f"--{name.replace('_', '-')}" for name in ("keyphrase", "verify_weight", "verify_gate")
             if getattr(args, name) is not None]
    if given and not args.verify:
        raise ConfigError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --verify")
    if args.verify_weight is not None and not (math.isfinite(args.verify_weight) and args.verify_weight >= 0):
        raise ConfigError(f"--verify-weight must be >= 0, got {args.verify_weight}")
    if args.verify_gate is not None and not 0.0 <= args.verify_gate <= 1.0:
        raise ConfigError(f"--verify-gate must be in [0, 1], got {args.verify_gate}")


def verify_from_args(args: argparse.Namespace, spotter) -> tuple[Any, Any]:
    """The :class:`~speechconv.detect.runner.Verify` that ``--verify`` asks for and its keyphrase search, checked
    against the model before any work (pocketsphinx installed, a 16 kHz model, words it knows); ``(None, None)``
    without ``--verify``."""
    if not args.verify:
        return None, None
    from speechconv.detect.runner import Verify, check_verify

    verify = Verify(args.keyphrase or spotter.keyword.replace("_", " "), args.verify_weight, gate=args.verify_gate)
    return verify, check_verify(spotter, verify)


def resolve_model(name: str | None) -> str:
    from speechconv.pretrained import DEFAULT_MODEL, default_model_available

    if name is not None:
        return name
    if not default_model_available():
        raise ConfigError(
            f"the bundled '{DEFAULT_MODEL}' model is not installed; pass --model NAME_OR_PATH "
            "(a model directory written by save_pretrained or a Lightning .ckpt)"
        )
    return DEFAULT_MODEL


def use_one_thread_unless_configured(engine: str = "torch") -> int | None:
    """Small streaming steps (live input): thread hand-offs cost more than they save. Returns the
    onnxruntime thread count (None: its default)."""
    if "OMP_NUM_THREADS" in os.environ:
        return None
    if engine == "torch":
        import torch

        torch.set_num_threads(1)
    return 1


def share_cores(workers: int, engine: str = "torch") -> int | None:
    """Large blocks: each of ``workers`` processes gets its share of the cores (unless OMP_NUM_THREADS).
    Returns the onnxruntime thread count (None: its default)."""
    if "OMP_NUM_THREADS" in os.environ:
        return None
    from speechconv.detect.runner import usable_cpus

    threads = max(1, usable_cpus() // max(1, workers))
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    return threads


def _check_args(args: argparse.Namespace) -> None:
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    check_verify_args(args)
    if not (math.isfinite(args.chunk_seconds) and MIN_CHUNK_SECONDS <= args.chunk_seconds <= MAX_CHUNK_SECONDS):
        raise ConfigError(f"--chunk-seconds must be between {MIN_CHUNK_SECONDS:g} and {MAX_CHUNK_SECONDS:g} "
                          f"seconds, got {args.chunk_seconds:g}")


_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}
_ESCAPES.update({c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c not in _ESCAPES})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (file names may hold them)."""
    return text.translate(_ESCAPES)


def report(message: str) -> None:
    print(f"speechconv: {one_line(message)}", file=sys.stderr, flush=True)


def _same_file_key(path: str) -> tuple | None:
    try:
        st = os.fstat(0) if path == "-" else os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def check_outputs(outputs: list[tuple[str, str]], inputs: list[str]) -> None:
    """Refuse outputs that cannot be written, that are one of the inputs, or that two options share.

    ``outputs`` holds ``(option, path)`` pairs. Raises :class:`ConfigError` or ``OutputError``.
    """
    from speechconv.output_files import check_output

    claimed: dict[object, str] = {}
    existing: dict[tuple, tuple[str, str]] = {}
    for option, path in outputs:
        check_output(path)
        key = _same_file_key(path)
        if key is not None:
            existing[key] = (option, path)
        name = key or os.path.realpath(path)
        if name in claimed:
            raise ConfigError(f"{path}: written by both {claimed[name]} and {option}")
        claimed[name] = option
    if not existing:
        return
    for path in inputs:
        key = _same_file_key(path)
        if key in existing:
            option, output = existing[key]
            same = "standard input" if path == "-" else f"the input {path}"
            raise ConfigError(f"{output}: {option} is {same}; refusing to overwrite it")


def run(args: argparse.Namespace) -> int:
    from speechconv.output_files import silence_stdout

    try:
        with signals_stop_the_run():
            return _run(args)
    except Terminated as stop:
        report(f"stopped by {stop}")
        return 128 + stop.signum
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        silence_stdout()
        return 128 + signal.SIGPIPE


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _audio_amount(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def summary_line(files: int, failed: int, audio_seconds: float, events: int, wall_seconds: float,
                 folder_errors: int = 0) -> str:
    """The run summary (without the ``speechconv: `` prefix), e.g.
    ``12 files scanned, 1 failed, 31.8 min of audio, 7 events, 210x real time``."""
    parts = [f"{_plural(files, 'file')} scanned", f"{failed} failed"]
    if folder_errors:
        parts.append(f"{_plural(folder_errors, 'folder error')}")
    parts += [f"{_audio_amount(audio_seconds)} of audio", _plural(events, "event")]
    if wall_seconds > 0 and audio_seconds > 0:
        speed = audio_seconds / wall_seconds
        parts.append(f"{speed:.0f}x real time" if speed >= 10 else f"{speed:.2g}x real time")
    return ", ".join(parts)


def _run(args: argparse.Namespace) -> int:
    from speechconv.audio.discover import expand_audio_paths
    from speechconv.output_files import open_output, stdout_writer

    began = time.monotonic()
    _check_args(args)
    expansion = expand_audio_paths(args.paths)
    files = expansion.files
    if args.format == "audacity" and len(files) > 1 and args.output is None:
        raise ConfigError("--format audacity writes one label track per input; with several inputs give --output")
    from speechconv.detect.outputs import per_input_paths

    tracks = per_input_paths(args.output, files) if args.format == "audacity" and args.output and files else []
    plots = per_input_paths(args.plot, files) if args.plot and files else []
    outputs = [("--output", path) for path in tracks] or ([("--output", args.output)] if args.output else [])
    check_outputs(outputs + [("--plot", path) for path in plots], files)

    for message in expansion.errors + ([] if args.quiet else expansion.notes):
        report(message)
    failed = bool(expansion.errors)

    from speechconv.detect.outputs import csv_header, format_events
    from speechconv.detect.runner import choose_workers, fix_mmap_threshold, run_detection
    from speechconv.output_files import OutputError, write_output
    from speechconv.runtime import load_model, resolve_engine
    from speechconv.runtime.engines import whisper_model_dir

    name = resolve_model(args.model)
    engine = "whisper" if whisper_model_dir(name) is not None else resolve_engine(args.engine)  # no torch import
    if plots:
        require_matplotlib()
    workers, lowered = choose_workers(args.workers, files, engine)
    if lowered and not args.quiet:
        report(lowered)
    fix_mmap_threshold()
    threads = share_cores(workers, engine)
    spotter = load_model(name, engine, threads)
    threshold = args.threshold if args.threshold is not None else spotter.detector.get("threshold", 0.5)
    verify, _ = verify_from_args(args, spotter)  # stop before any output, not at the first file
    on_terminal = sys.stderr.isatty()
    scanned = failed_files = events = 0
    audio_seconds = 0.0
    with ExitStack() as stack:
        detections = run_detection(spotter, files, {"threshold": args.threshold}, args.chunk_seconds, workers,
                                   name, keep_curve=bool(plots), verify=verify)
        stack.callback(detections.close)  # ends worker processes whatever stops the loop
        results = detections
        if on_terminal and not args.quiet:
            from tqdm import tqdm

            results = tqdm(detections, total=len(files), unit="file", file=sys.stderr)
        stream = None
        if not tracks:
            stream = stack.enter_context(open_output(args.output)) if args.output else stdout_writer()
            if args.format == "csv":
                stream.write(csv_header())
                stream.flush()
        for index, result in enumerate(results):
            scanned += 1
            events += len(result.events)
            audio_seconds += result.duration
            # a file damaged part-way keeps the rows before the damage; JSONL has a record for every file
            if result.ok or result.events or args.format == "jsonl":
                text = format_events(args.format, result.path, result.events, spotter.keyword, result.error)
                if tracks:
                    try:
                        write_output(tracks[index], text)
                    except OutputError as err:
                        failed = True
                        report(str(err))
                else:
                    stream.write(text)
                    stream.flush()
            if not result.ok:
                failed = True
                failed_files += 1
                report(result.error)
            elif plots:
                failed |= not _plot(plots[index], result, threshold, spotter.keyword)
    if args.summary or not args.quiet:
        report(summary_line(scanned, failed_files, audio_seconds, events, time.monotonic() - began,
                            len(expansion.errors)))
    return 1 if failed else 0


def require_matplotlib(option: str = "--plot") -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(f'{option} needs matplotlib; pip install "speechconv[plot]"')


def _plot(path: str, result, threshold: float, keyword: str) -> bool:
    """Draw one plot; a failure is reported and the run goes on (the detections are kept)."""
    from speechconv.detect.plot import plot_detections

    try:
        plot_detections(path, result.curve, threshold, result.events, title=result.path, keyword=keyword)
    except Exception as err:  # OutputError, or matplotlib failing on this curve
        reason = str(err) if getattr(err, "path", None) == path else f"{path}: cannot draw the plot ({err})"
        report(reason)
        return False
    return True
