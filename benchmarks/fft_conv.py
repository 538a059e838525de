"""Direct vs FFT convolution: time both paths side by side and print the kernel size where FFT starts to win.

    python benchmarks/fft_conv.py [--nd 1|2] [--length 16000] [--channels 16] [--threads 2]

Both paths compute the same numbers (tests/test_blocks.py checks 1e-4 relative); this measures cost only.
"""

from __future__ import annotations

import argparse
import time

import torch

from speechconv.blocks.fft import direct_conv, fft_conv


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nd", type=int, choices=(1, 2), default=1, help="1-D (time) or 2-D (image) convolution")
    parser.add_argument("--length", type=int, default=16000, help="1-D: input length; 2-D: side of a square input")
    parser.add_argument("--channels", type=int, default=16, help="input and output channels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kernels", type=int, nargs="+", default=None, help="kernel sizes to try")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernels is None:
        args.kernels = [3, 5, 9, 17, 33, 65, 129, 257] if args.nd == 1 else [3, 5, 7, 9, 11, 15, 21, 31]
    side = args.length if args.nd == 1 else min(args.length, 128)
    shape = (args.batch, args.channels) + (side,) * args.nd
    x = torch.randn(shape)
    print(f"{args.nd}-D convolution, input {tuple(shape)}, {args.channels} filters, {args.threads} threads")
    print(f"{'kernel':>7} {'direct ms':>10} {'fft ms':>10} {'direct/fft':>11}")
    break_even = None
    with torch.no_grad():
        for k in args.kernels:
            if k > side:
                break
            w = torch.randn((args.channels, args.channels) + (k,) * args.nd)
            t_direct = best_time(lambda w=w: direct_conv(x, w), args.repeats)
            t_fft = best_time(lambda w=w: fft_conv(x, w), args.repeats)
            ratio = t_direct / t_fft
            print(f"{k:>7} {t_direct * 1e3:>10.2f} {t_fft * 1e3:>10.2f} {ratio:>11.2f}")
            if break_even is None and ratio > 1.0:
                break_even = k
    if break_even is None:
        print("FFT did not win for any kernel size tried on this machine")
    else:
        print(f"FFT starts to win at kernel size {break_even} on this machine")


if __name__ == "__main__":
    main()
