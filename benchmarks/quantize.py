"""float32 vs int8 ONNX streaming step: accuracy change and detection speed, side by side in one run.

    python benchmarks/quantize.py [--model hello_small|DIR|CKPT] [--stream WAV --truth CSV] [--threads 1]

Exports the model's streaming step (float), quantises it (int8 dynamic; int8 static, calibrated on
the first third of the stream), runs all three over the same stream with onnxruntime and reports:
the keyword posterior max/mean abs difference from float, the detections (with --truth: hits,
misses = FRR, false alarms per hour; else agreement with the float detections) and the time per
second of audio (real-time factor) with the speed-up over float. Without --stream a 60 s stream of
noise and tone bursts is generated; without a bundled model a random-weight tdnn is used (numbers
then show quantisation error, not accuracy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def generated_stream(seconds: float, sample_rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    bursts = ((t % 3.0) > 1.0) & ((t % 3.0) < 1.6)
    return (0.02 * rng.standard_normal(len(t)) + 0.3 * bursts * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def load_spotter(name: str | None):
    import torch

    from speechconv.pretrained import default_model_available, load_pretrained

    if name is not None or default_model_available():
        return load_pretrained(name or "hello_small", fold_bn=True), name or "hello_small"
    from speechconv.frontends import build_frontend
    from speechconv.models import build_model
    from speechconv.streaming import KeywordSpotter

    torch.manual_seed(0)
    net = build_model({"name": "tdnn", "num_classes": 2})
    frontend = build_frontend({"name": "logmel", "n_mels": net.in_features})
    return KeywordSpotter(frontend, net, ["_unknown_", "hello"]).eval(), "random-weight tdnn (no bundled model)"


def run_step(path: Path, wave: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(times, keyword posteriors, seconds of compute) over ``wave``."""
    from speechconv.export.onnx import OnnxStep

    step = OnnxStep(path, threads)
    size = step.spec.chunk_samples
    chunks = [wave[s:s + size] for s in range(0, len(wave) - size + 1, size)]
    step.feed(chunks[0])  # warm-up
    step.reset()
    start = time.perf_counter()
    scores = [step.feed(c)[step.spec.keyword_index] for c in chunks]
    elapsed = time.perf_counter() - start
    scores = np.concatenate(scores)
    return step.spec.output_times(0, len(scores)), scores, elapsed


def matched(events, spans, tolerance: float = 0.25) -> set[int]:
    """Indices of ``spans`` (start, end) that some event's peak falls in (with tolerance)."""
    return {i for i, (s, e) in enumerate(spans) for ev in events if s - tolerance <= ev.peak <= e + tolerance}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pretrained name, directory or .ckpt (default: hello)")
    parser.add_argument("--stream", default=None, metavar="WAV", help="evaluation stream (speechconv evalstream)")
    parser.add_argument("--truth", default=None, metavar="CSV", help="its ground truth (start,end,label,...)")
    parser.add_argument("--chunk-samples", type=int, default=None, help="samples per step (default: 100 ms)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args()

    from speechconv.audio import load_audio
    from speechconv.detect.detector import Detector
    from speechconv.export import export_spotter
    from speechconv.export.quantize import quantize_onnx

    spotter, label = load_spotter(args.model)
    rate = spotter.sample_rate
    wave = load_audio(args.stream, rate)[0].numpy() if args.stream else generated_stream(60.0, rate)
    chunk = args.chunk_samples or spotter.samples_per_output * max(1, round(0.1 * rate / spotter.samples_per_output))
    detector = Detector.from_config(spotter.detector, spotter.output_period)
    spans = None
    if args.truth:
        from speechconv.data.evalstream import read_ground_truth

        spans = [(r["start"], r["end"]) for r in read_ground_truth(args.truth) if r["label"] == spotter.keyword]

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"float32": Path(tmp) / "float.onnx"}
        export_spotter(spotter, paths["float32"], "onnx", chunk)
        paths["int8-dynamic"] = Path(tmp) / "dynamic.onnx"
        quantize_onnx(paths["float32"], paths["int8-dynamic"], "dynamic")
        paths["int8-static"] = Path(tmp) / "static.onnx"
        quantize_onnx(paths["float32"], paths["int8-static"], "static", wave[: len(wave) // 3])
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        results = {k: run_step(p, wave, args.threads) for k, p in paths.items()}

    seconds = len(wave) / rate
    print(f"model: {label}; stream: {args.stream or 'generated'} ({seconds:.1f} s); chunk {chunk} samples; "
          f"onnxruntime threads {args.threads}")
    _, reference, float_time = results["float32"]
    reference_events = detector.detect(results["float32"][0], reference)
    header = f"{'variant':<13} {'size KB':>8} {'max|dp|':>8} {'mean|dp|':>9} {'events':>6} {'agree':>6}"
    header += f" {'RTF':>8} {'speed-up':>8}" + (f" {'FRR':>6} {'FA/h':>6}" if spans is not None else "")
    print(header)
    for name, (times, scores, elapsed) in results.items():
        events = detector.detect(times, scores)
        same = sum(any(abs(e.peak - r.peak) <= 0.1 for r in reference_events) for e in events)
        line = (f"{name:<13} {sizes[name] / 1024:8.1f} {np.abs(scores - reference).max():8.4f} "
                f"{np.abs(scores - reference).mean():9.5f} {len(events):6d} {same:3d}/{len(reference_events):<2d} "
                f"{elapsed / seconds:8.5f} {float_time / elapsed:7.2f}x")
        if spans is not None:
            hits = matched(events, spans)
            false_alarms = sum(not any(s - 0.25 <= e.peak <= t + 0.25 for s, t in spans) for e in events)
            frr = 1 - len(hits) / max(1, len(spans))
            line += f" {frr:6.3f} {false_alarms / (seconds / 3600):6.1f}"
        print(line)


if __name__ == "__main__":
    main()
