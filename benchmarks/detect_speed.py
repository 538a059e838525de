"""End-to-end detection speed: streaming engine vs. a naive sliding-window rescorer (not a test).

Generates an hour of 16 kHz audio (noise, tone bursts and a syllable-rate modulated harmonic signal),
written block by block, then times

(a) ``detect_file``: decode in blocks -> front-end -> model -> detector, through the streaming engine,
    on PyTorch and (with a model that has ``model.onnx``, as the bundled hello_small does) on the
    onnxruntime engine, which must give the same events;
(b) the naive baseline: at every output hop, rescore the last 1 s window with the same model
    (offline; one window per call, as a live sliding-window detector runs; ``--baseline-batch``
    scores several windows per call, an offline-only shortcut), then the same detector. It is timed
    on an excerpt (``--baseline-seconds``) and extrapolated to the full length.

Also prints the FLOP-based ideal: this CPU's achieved matmul GFLOP/s divided by the model's
2 x MACs per second of audio (model only; the front-end is not counted), and with ``--cli`` the
``speechconv`` command itself per engine, each in a fresh process: ``--help``, ``detect`` on the
bundled example (start-up) and on the generated audio (wall time and peak RSS).

    python benchmarks/detect_speed.py [--model NAME_OR_PATH] [--hours 1] [--baseline-seconds 60] [--cli]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechconv.detect import detect_file, make_detector
from speechconv.detect.runner import DEFAULT_CHUNK_SECONDS


def generate_audio(path: str, seconds: float, sample_rate: int = 16000, block_seconds: float = 60.0) -> None:
    """Write ``seconds`` of test audio to ``path`` (16-bit WAV) one block at a time."""
    rng = np.random.default_rng(0)
    block = int(block_seconds * sample_rate)
    total = int(seconds * sample_rate)
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sample_rate
            noise = 0.03 * rng.standard_normal(n)
            tones = 0.2 * np.sin(2 * np.pi * 700 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0.7)
            syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)  # ~4 Hz, like speech
            voiced = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 6)) * syllables * 0.1
            voiced *= np.sin(2 * np.pi * 0.05 * t) > 0
            f.write((noise + tones + voiced).astype(np.float32))


def load_spotter(model: str | None):
    from speechconv.pretrained import default_model_available, load_pretrained

    if model is None and default_model_available():
        model = "hello_small"
    if model is not None and (os.path.exists(model) or model == "hello_small" or model.endswith(".ckpt")):
        return load_pretrained(model, fold_bn=True), model
    from speechconv.frontends import build_frontend
    from speechconv.models import build_model
    from speechconv.streaming import KeywordSpotter

    name = model or "tc_resnet"
    torch.manual_seed(0)
    built = build_model({"name": name, "num_classes": 2})
    frontend = build_frontend({"name": "logmel", "n_mels": getattr(built, "in_features", 40)})
    from speechconv.blocks.fuse import fold_batch_norm

    spotter = fold_batch_norm(KeywordSpotter(frontend, built, ["_unknown_", "hello"]).eval())
    return spotter, f"{name} (random weights)"


@torch.inference_mode()
def sliding_window_baseline(spotter, wave: torch.Tensor, window_seconds: float = 1.0, batch: int = 1):
    """Keyword score at every output hop from an offline pass over the last ``window_seconds``."""
    window = int(window_seconds * spotter.sample_rate)
    hop = spotter.samples_per_output
    ends = np.arange(window, len(wave) + 1, hop)
    scores = np.empty(len(ends))
    k = spotter.keyword_index
    for i in range(0, len(ends), batch):
        stack = torch.stack([wave[e - window:e] for e in ends[i:i + batch]])
        scores[i:i + batch] = spotter(stack)[:, k, -1].numpy()
    times = ends / spotter.sample_rate
    return make_detector(spotter).detect(times, scores)


def achieved_gflops(seconds: float = 2.0, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pretrained model or registered model name")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--baseline-batch", type=int, default=1, help="windows per call in (b)")
    parser.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                        help="block length (default: the CLI's)")
    parser.add_argument("--audio", default=None, help="reuse/keep the generated file at this path")
    parser.add_argument("--cli", action="store_true",
                        help="also time the speechconv command per engine in fresh processes (wall, peak RSS)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (default: all cores, as the CLI with one worker)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spotter, model_name = load_spotter(args.model)
    seconds = args.hours * 3600
    workdir = tempfile.mkdtemp(prefix="speechconv-bench-")
    path = args.audio or os.path.join(workdir, "long.wav")
    if not os.path.exists(path):
        start = time.perf_counter()
        generate_audio(path, seconds, spotter.sample_rate)
        print(f"generated {seconds:.0f} s of audio in {time.perf_counter() - start:.1f} s: {path}")
    seconds = sf.info(path).duration

    start = time.perf_counter()
    result = detect_file(spotter, path, chunk_seconds=args.chunk_seconds)
    streaming_time = time.perf_counter() - start
    assert result.ok, result.error
    onnx_time = None
    if onnx_model_of(args.model) is not None:
        from speechconv.runtime import load_model

        onnx_spotter = load_model(onnx_model_of(args.model), "onnx", threads=args.threads)
        start = time.perf_counter()
        onnx_result = detect_file(onnx_spotter, path, chunk_seconds=args.chunk_seconds)
        onnx_time = time.perf_counter() - start
        assert onnx_result.ok, onnx_result.error
        same = [(e.start, e.end, e.peak) for e in onnx_result.events] == [(e.start, e.end, e.peak)
                                                                          for e in result.events]
        assert same, "the onnxruntime engine found other events"

    excerpt = min(args.baseline_seconds, seconds)
    wave, _ = sf.read(path, frames=int(excerpt * spotter.sample_rate), dtype="float32")
    start = time.perf_counter()
    sliding_window_baseline(spotter, torch.from_numpy(wave), batch=args.baseline_batch)
    naive_time = (time.perf_counter() - start) * seconds / excerpt

    gflops = achieved_gflops()
    macs = spotter.model.macs_per_second(spotter.frontend.frame_rate)
    ideal = gflops * 1e9 / (2 * macs)

    print(f"model: {model_name}; {sum(p.numel() for p in spotter.parameters()):,} parameters; "
          f"{macs / 1e6:.2f} M MACs per second of audio; torch threads: {torch.get_num_threads()}")
    print(f"audio: {seconds:.0f} s; detections: {len(result.events)}")
    print(f"{'method':<44}{'seconds':>10}{'x real time':>14}")
    print(f"{'(a) streaming engine, end to end':<44}{streaming_time:>10.2f}{seconds / streaming_time:>14.0f}")
    if onnx_time is not None:
        print(f"{'(a) the same on onnxruntime (same events)':<44}{onnx_time:>10.2f}{seconds / onnx_time:>14.0f}")
    label = f"(b) 1 s window per hop, batch {args.baseline_batch} (from {excerpt:.0f} s)"
    print(f"{label:<44}{naive_time:>10.2f}{seconds / naive_time:>14.0f}")
    print(f"{'FLOP ideal (model only, ' + f'{gflops:.0f} GFLOP/s matmul)':<44}"
          f"{seconds / ideal:>10.3f}{ideal:>14.0f}")
    print(f"speed-up (b)/(a): {naive_time / streaming_time:.1f}x "
          f"(b extrapolated linearly from a {excerpt:.0f} s excerpt)")
    if onnx_time is not None:
        print(f"onnxruntime / PyTorch engine speed: {streaming_time / onnx_time:.2f}x")
    if args.cli:
        cli_table(path, args.model or "hello_small", seconds)


def onnx_model_of(model: str | None) -> str | None:
    """The model name or path to give the onnxruntime engine, when it has a ``model.onnx``."""
    from speechconv.pretrained import PACKAGE_DIR

    name = model or "hello_small"
    folder = PACKAGE_DIR / name if "/" not in name and not os.path.exists(name) else Path(name)
    return name if (folder / "model.onnx").is_file() else None


#: Runs a command and prints its peak RSS: a fork of this (torch-laden) process would count our memory.
RSS_SHIM = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
            "status = subprocess.call(sys.argv[1:], stderr=subprocess.DEVNULL); wall = time.perf_counter() - start; "
            "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(status)")


def timed_run(argv: list[str]) -> tuple[float, float, str]:
    """``(wall seconds, peak RSS in MB, stdout)`` of a fresh process (started and timed by a small shim)."""
    proc = subprocess.run([sys.executable, "-c", RSS_SHIM, *argv], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)}: exit status {proc.returncode}")
    wall, rss = proc.stderr.split()[-2:]
    return float(wall), int(rss) / 1024, proc.stdout


def cli_table(path: str, model: str, seconds: float, repeats: int = 3) -> None:
    """The ``speechconv`` command per engine, each run in a fresh process (median of ``repeats``)."""
    from speechconv.pretrained import PACKAGE_DIR

    cli = [sys.executable, "-m", "speechconv.cli.main"]
    example = str(PACKAGE_DIR / "examples" / "hello_example.wav")
    rows = [("speechconv --help", None, cli + ["--help"])]
    for engine in ("torch", "onnx"):
        rows.append((f"detect example (21.9 s), --engine {engine}", engine,
                     cli + ["detect", "--quiet", "--engine", engine, "--model", model, example]))
    for engine in ("torch", "onnx"):
        rows.append((f"detect {seconds / 3600:g} h, --engine {engine}", engine,
                     cli + ["detect", "--quiet", "--engine", engine, "--model", model, path]))
    if (PACKAGE_DIR / "hello" / "config.yaml").is_file():  # the default model: Whisper's encoder + a head
        rows.append(("hello (whisper head): detect example", None, cli + ["detect", "--quiet", example]))
        rows.append((f"hello (whisper head): detect {seconds / 3600:g} h", None, cli + ["detect", "--quiet", path]))
    print(f"\n{'command (fresh process)':<44}{'wall s':>10}{'peak RSS MB':>14}")
    outputs = {}
    for label, _engine, argv in rows:
        runs = [timed_run(argv) for _ in range(repeats if "example" in label or "help" in label else 1)]
        wall = sorted(r[0] for r in runs)[len(runs) // 2]
        rss = max(r[1] for r in runs)
        outputs.setdefault(label.split(",")[0], set()).add(runs[0][2])
        print(f"{label:<44}{wall:>10.2f}{rss:>14.0f}")
    for label, texts in outputs.items():
        if label != "speechconv --help":
            assert len(texts) == 1, f"{label}: the engines printed different CSV"
    print("both engines printed the same CSV")


if __name__ == "__main__":
    main()
