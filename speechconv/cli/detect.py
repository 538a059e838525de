"""``speechconv detect``: find the keyword in audio files; one CSV/JSONL row per detection."""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import ExitStack

from speechconv.audio.discover import AUDIO_EXTENSIONS, find_audio_files
from speechconv.errors import ConfigError

EPILOG = f"""\
output (stdout unless --output), one row per detection:
  csv       file,start,end,peak,score   (seconds with 3 decimals; score = smoothed posterior at the peak)
  jsonl     {{"file": ..., "start": ..., "end": ..., "peak": ..., "score": ...}}
  audacity  start<TAB>end<TAB>label: a label track per input. With several inputs --output is needed
            and names one track per input, OUT_<input stem>.txt (likewise --plot: PLOT_<input stem>.png).

Folders are searched recursively for {" ".join(AUDIO_EXTENSIONS)} files; '-' reads one file from
standard input (its rows name the file '-'). A file that cannot be read prints
'speechconv: FILE: reason' on stderr, the other files are still processed, and the exit status is 1.
--output files are written atomically. --workers N uses N processes; the output keeps input order.
Audio is scored in blocks of --chunk-seconds (default 120 s: large blocks let the cores share each
step; memory stays bounded whatever the file length). The cores are shared among the --workers
processes (OMP_NUM_THREADS, when set, decides instead)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect the keyword in audio files",
        description="Detect the keyword in audio files with a streaming keyword spotter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio file, folder, or '-' for stdin")
    parser.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                        help="pretrained model: bundled name, model directory or Lightning .ckpt (default: hello)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="score threshold in [0, 1] (default: the model's)")
    parser.add_argument("--format", choices=("csv", "jsonl", "audacity"), default="csv")
    parser.add_argument("--output", default=None, metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="save spectrogram, score curve, threshold and detections as a PNG")
    parser.add_argument("--chunk-seconds", type=float, default=120.0, metavar="S",
                        help="audio is read and scored in blocks of this length (default: 120)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="files processed in parallel by N processes (default: 1)")
    parser.set_defaults(func=run)


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


def use_one_thread_unless_configured() -> None:
    """Small streaming steps (live input): OpenMP hand-offs cost more than they save."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def share_cores(workers: int) -> None:
    """Large blocks: each of ``workers`` processes gets its share of the cores (unless OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))


def _check_args(args: argparse.Namespace) -> None:
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    if not (args.chunk_seconds > 0 and math.isfinite(args.chunk_seconds)):
        raise ConfigError(f"--chunk-seconds must be > 0, got {args.chunk_seconds}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")


def _expand(paths: list[str]) -> tuple[list[str], list[str]]:
    files: list[str] = []
    errors = []
    for path in paths:
        found = find_audio_files([path])
        if not found and path != "-" and os.path.isdir(path):
            errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder")
        files.extend(f for f in found if f not in files)
    return files, errors


def run(args: argparse.Namespace) -> int:
    from speechconv.detect.outputs import atomic_output, csv_header, format_events, per_input_paths
    from speechconv.detect.runner import fix_mmap_threshold, run_detection
    from speechconv.pretrained import load_pretrained

    _check_args(args)
    fix_mmap_threshold()
    share_cores(args.workers)
    model = resolve_model(args.model)
    spotter = load_pretrained(model)
    files, errors = _expand(args.paths)
    for message in errors:
        print(f"speechconv: {message}", file=sys.stderr)
    if args.format == "audacity" and len(files) > 1 and args.output is None:
        raise ConfigError("--format audacity writes one label track per input; with several inputs give --output")
    overrides = {"threshold": args.threshold}
    threshold = args.threshold if args.threshold is not None else spotter.detector.get("threshold", 0.5)
    plots = per_input_paths(args.plot, files) if args.plot and files else []
    results = run_detection(spotter, files, overrides, args.chunk_seconds, args.workers, model,
                            keep_curve=bool(plots))
    if sys.stderr.isatty():
        from tqdm import tqdm

        results = tqdm(results, total=len(files), unit="file", file=sys.stderr)
    failed = bool(errors)
    with ExitStack() as stack:
        stream = None
        if args.format != "audacity":
            stream = stack.enter_context(atomic_output(args.output)) if args.output else sys.stdout
            if args.format == "csv":
                stream.write(csv_header())
        tracks = per_input_paths(args.output, files) if args.format == "audacity" and args.output else []
        for index, result in enumerate(results):
            if not result.ok:
                failed = True
                print(f"speechconv: {result.error}", file=sys.stderr)
                continue
            text = format_events(args.format, result.path, result.events, spotter.keyword)
            if tracks:
                with atomic_output(tracks[index]) as f:
                    f.write(text)
            else:
                stream.write(text)
                stream.flush()
            if plots:
                from speechconv.detect.plot import plot_detections

                plot_detections(plots[index], result.curve, threshold, result.events, title=result.path,
                                keyword=spotter.keyword)
    return 1 if failed else 0
