#!/usr/bin/env python3
"""Keyword detection with an exported speechconv ONNX step, using only numpy, soundfile and onnxruntime.

    speechconv export --model hello --format onnx --out hello.onnx
    python examples/onnx_detect.py --model hello.onnx audio.wav [more.wav ...]

Prints the same CSV as ``speechconv detect`` (``file,start,end,peak,score``). The detector options
default to the model's (stored in the ONNX metadata) and mirror ``speechconv.detect.Detector``:
causal moving-average smoothing, threshold, merging of close runs, refractory period, and the
bracket of the spoken word (``start``, ``end``) before the detection time ``peak``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

DEFAULTS = {"threshold": 0.5, "merge_seconds": 0.25, "refractory_seconds": 0.5, "keyword_seconds": 0.6,
            "peak_delay_seconds": 0.05}
TIME_EPS = 1e-9  # slack of time comparisons: frame times are exact multiples of the period, up to rounding


class Step:
    """The exported streaming step, its description and its state."""

    def __init__(self, path: str):
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "speechconv" not in props:
            raise SystemExit(f"onnx_detect: {path}: not a speechconv streaming step (no 'speechconv' metadata)")
        self.spec = json.loads(props["speechconv"])
        stored = json.loads(props["speechconv.initial_state"])
        self.initial = {
            name: np.frombuffer(base64.b64decode(e["data"]), dtype=np.dtype(e["dtype"]).newbyteorder("<"))
            .astype(e["dtype"]).reshape(e["shape"])
            for name, e in stored.items()
        }

    def keyword_scores(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(times, keyword posteriors)`` of the frames a speechconv stream gives for ``wave``."""
        spec = self.spec
        size, names = spec["chunk_samples"], spec["state_names"]
        state = [self.initial[n] for n in names]
        padded = np.zeros(-(-len(wave) // size) * size, dtype=np.float32)
        padded[: len(wave)] = wave
        scores = []
        for start in range(0, len(padded), size):
            feeds = {"chunk": padded[None, start:start + size]}
            feeds.update({f"state_in.{n}": s for n, s in zip(names, state)})
            posteriors, *state = self.session.run(None, feeds)
            scores.append(posteriors[0, spec["keyword_index"]])
        scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        period = spec["output_frame_period"]
        times = spec["first_output_time"] + period * np.arange(len(scores))
        # drop frames that need the zero padding of the last chunk
        duration = len(wave) / spec["sample_rate"]
        keep = (times >= spec["stream_start_time"] - 1e-9) & (times + spec["audio_end_lag"] <= duration + 1e-9)
        frames = np.round((times[keep] - spec["stream_start_time"]) / period)
        return stream_times(spec["frame_timing"], frames), scores[keep]


def stream_times(timing: dict, frames: np.ndarray) -> np.ndarray:
    """Seconds described by stream output frames, with speechconv's arithmetic (bit-identical times)."""
    t = np.asarray(frames, dtype=np.float64) + timing.get("warm_frames", 0)
    end_frame = timing["offset"] + t * timing["stride"] + timing["size"] - 1
    hop = timing["hop"]
    end_sample = end_frame * hop + timing["n_fft"] - timing["lookahead"] * hop - timing.get("warmup_samples", 0)
    return end_sample / timing["sample_rate"]


def smooth(scores: np.ndarray, window: int) -> np.ndarray:
    """Causal moving average over the last ``window`` frames (fewer at the start)."""
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or len(scores) == 0:
        return scores
    joined = np.concatenate([np.zeros(window - 1), scores])
    sums = sliding_window_view(joined, window).sum(axis=1)
    return sums / np.minimum(np.arange(1, len(scores) + 1), window)


def detect(times, scores, threshold, window, merge_seconds, refractory_seconds, keyword_seconds, peak_delay_seconds):
    """Events ``(start, end, peak, score)``: threshold runs, merged when close, refractory period; ``start``
    and ``end`` bracket the spoken keyword: ``end = peak - peak_delay_seconds``, ``start = end -
    keyword_seconds``, clipped at 0."""
    smoothed = smooth(scores, window)
    edges = np.diff(np.concatenate([[False], smoothed >= threshold, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    events, group, last_end = [], None, -np.inf

    def close(group, last_end):
        if group is None or group[0] - last_end < refractory_seconds - TIME_EPS:
            return last_end
        run_start, run_end, peak, score = group
        end = max(0.0, peak - peak_delay_seconds)
        events.append((max(0.0, end - keyword_seconds), end, peak, score))
        return run_end

    for first, last in zip(starts, ends):
        peak_index = first + int(np.argmax(smoothed[first:last + 1]))
        start, end = float(times[first]), float(times[last])
        peak, score = float(times[peak_index]), float(smoothed[peak_index])
        if group is not None and start - group[1] < merge_seconds - TIME_EPS:
            group[1] = end
            if score > group[3]:
                group[2], group[3] = peak, score
        else:
            last_end = close(group, last_end)
            group = [start, end, peak, score]
    close(group, last_end)
    return events


def detector_options(spec: dict, threshold: float | None) -> dict:
    options = {**DEFAULTS, **spec.get("detector", {})}
    if threshold is not None:
        options["threshold"] = threshold
    window = options.pop("smoothing_frames", None)
    seconds = options.pop("smoothing_seconds", None)
    if window is None and seconds is not None:
        window = max(1, int(round(seconds / spec["output_frame_period"])))
    return {"window": int(window or 1), **options}


def read_mono(path: str, sample_rate: int) -> np.ndarray:
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz, the model needs {sample_rate} Hz (resample it first)")
    return wave.mean(axis=1, dtype=np.float32) if wave.shape[1] > 1 else wave[:, 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="WAV")
    parser.add_argument("--model", required=True, metavar="ONNX", help="file written by `speechconv export`")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's")
    args = parser.parse_args(argv)
    step = Step(args.model)
    options = detector_options(step.spec, args.threshold)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    sys.stdout.write("file,start,end,peak,score\n")
    status = 0
    for path in args.paths:
        try:
            wave = read_mono(path, step.spec["sample_rate"])
        except (OSError, ValueError, sf.LibsndfileError) as err:
            print(f"onnx_detect: {err}", file=sys.stderr)
            status = 1
            continue
        times, scores = step.keyword_scores(wave)
        for start, end, peak, score in detect(times, scores, **options):
            writer.writerow([path, f"{start:.3f}", f"{end:.3f}", f"{peak:.3f}", f"{score:.4f}"])
    return status


if __name__ == "__main__":
    sys.exit(main())
