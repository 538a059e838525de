"""Speed of scanning an MLP over time: window by window vs. as one convolution (``mlp_to_conv``).

Times, in one run and on the same weights and input:

- ``per-window``: the plain MLP called on the window ending at each frame (a Python loop);
- ``batched``: every window cut out (``unfold``, W copies of each frame) and sent through the MLP at once;
- ``conv``: the equivalent ConvPool1d network (kernel W, then 1x1 layers), direct convolution;
- ``conv-fft``: the same with the first layer computed by FFT.

and prints the median time per second of audio and the speed-up of the convolutional scan, plus the
largest output difference (the forms agree to float32 rounding).

    python benchmarks/mlp_scan.py --lengths 100 1000 3000 --window 41 --hidden 128 128 128

On one busy CPU thread (2-core machine) the convolution was about 20-30x faster than the per-window
loop and 1.2-2x faster than the batched windows, whose W-fold copy of the input it avoids.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from speechconv.models.mlp_scan import MLPScan, mlp_to_conv


def per_window(model: MLPScan, x: torch.Tensor) -> torch.Tensor:
    """The MLP on the causal window ending at every frame, one call per frame."""
    window = model.options["window"]
    padded = F.pad(x, (window - 1, 0))
    return torch.stack([model.mlp(padded[..., t:t + window]) for t in range(x.shape[-1])], dim=-1)


def median_seconds(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 3000], help="input frames")
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--window", type=int, default=41)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128, 128])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frame-rate", type=float, default=100.0, help="feature frames per second")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: stable timings; 0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MLPScan(args.features, 2, args.window, args.hidden, lookahead=0).eval()
    conv = mlp_to_conv(model)
    conv_fft = mlp_to_conv(model, conv_impl="fft")
    methods = {
        "per-window": lambda x: per_window(model, x),
        "batched": model,
        "conv": conv,
        "conv-fft": conv_fft,
    }
    print(f"MLP {args.features}x{args.window} -> {args.hidden} -> 2, batch {args.batch}, "
          f"{torch.get_num_threads()} threads; ms per second of audio (median of {args.repeats})")
    head = ["frames", *methods, "per-window/conv", "batched/conv", "max |diff|"]
    rows = []
    with torch.inference_mode():
        for frames in args.lengths:
            x = torch.randn(args.batch, args.features, frames)
            outputs = {name: fn(x) for name, fn in methods.items()}
            diff = max((out - outputs["per-window"]).abs().max().item() for out in outputs.values())
            seconds = {name: median_seconds(lambda fn=fn, x=x: fn(x), args.repeats) for name, fn in methods.items()}
            audio = frames / args.frame_rate
            row = [str(frames)] + [f"{seconds[m] / audio * 1000:.2f}" for m in methods]
            row += [f"{seconds['per-window'] / seconds['conv']:.1f}x", f"{seconds['batched'] / seconds['conv']:.1f}x",
                    f"{diff:.1e}"]
            rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for i, row in enumerate([head, *rows]):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
