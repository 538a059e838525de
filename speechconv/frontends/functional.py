"""Pure functions of the spectrogram front-ends: causal frame counts and the exact mel products.

The filterbank product (and MFCC's DCT) is accumulated in float64 and rounded to float32, so a frame's
features do not depend on how many frames are computed together (see :func:`frame_matmul`): streaming
gives the offline numbers bit for bit. The mel filterbank is banded (each band covers a few FFT bins), so
it is applied as a few dense products over consecutive bands and only the bins they cover
(:func:`band_groups`, :func:`banded_matmul`): about a fifth of the dense product's work, with the same
float64 sums of the same nonzero terms. Training does not need bit-exactness and uses :func:`fast_matmul`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def num_frames(num_samples: int, n_fft: int, hop_length: int) -> int:
    """Number of complete causal frames in ``num_samples`` samples."""
    if num_samples < n_fft:
        return 0
    return (num_samples - n_fft) // hop_length + 1


def frame_matmul(matrix: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``matrix @ frames`` for ``(out, in)`` and ``(B, in, T)``, the same bits whatever T is.

    A float32 GEMM's blocking, hence its rounding, depends on the matrix sizes, so a frame's result
    would depend on how many frames are computed together and streaming would drift from offline by
    a few ulps. Accumulating in float64 and rounding once to float32 makes each frame's result
    independent of T (except for astronomically rare ties). MPS has no float64 and stays in float32.
    """
    if frames.device.type == "mps":
        return torch.matmul(matrix, frames)
    return torch.matmul(matrix.double(), frames.double()).to(frames.dtype)


def band_groups(matrix: torch.Tensor, overhead: int = 256) -> list[tuple[int, int, int, int]]:
    """Split the rows of a banded ``(out, in)`` matrix into groups of consecutive rows for :func:`banded_matmul`.

    Returns ``(first_row, end_row, first_col, end_col)`` per group: the group's rows are zero outside
    columns ``[first_col, end_col)``. Groups minimise the multiply-adds per frame plus ``overhead`` per
    group (a product's fixed cost), by dynamic programming over the row boundaries.
    """
    nonzero = matrix != 0
    rows = matrix.shape[0]
    starts, ends = [], []
    for row in nonzero:
        cols = torch.nonzero(row).flatten()
        starts.append(int(cols[0]) if len(cols) else 0)
        ends.append(int(cols[-1]) + 1 if len(cols) else 0)
    best = [0] + [math.inf] * rows
    cut = [0] * (rows + 1)
    for end in range(1, rows + 1):
        for first in range(end):
            lo, hi = min(starts[first:end]), max(ends[first:end])
            cost = best[first] + max(hi - lo, 0) * (end - first) + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, first
    groups, end = [], rows
    while end > 0:
        first = cut[end]
        lo, hi = min(starts[first:end]), max(ends[first:end])
        groups.append((first, end, lo, max(hi, lo)))
        end = first
    return groups[::-1]


def banded_matmul(
    matrix: torch.Tensor, frames: torch.Tensor, groups: Sequence[tuple[int, int, int, int]]
) -> torch.Tensor:
    """:func:`frame_matmul` for a banded ``matrix`` split by :func:`band_groups`: same float64 sums, less work.

    Each group's rows are a float64 product over the group's columns only (the skipped terms are
    exact zeros), so a frame's result is independent of T as with :func:`frame_matmul`.
    """
    if frames.device.type == "mps":
        return torch.matmul(matrix, frames)
    matrix64, frames64 = matrix.double(), frames.double()
    out = frames64.new_empty(frames.shape[:-2] + (matrix.shape[0], frames.shape[-1]))
    flat_frames = frames64.reshape(-1, *frames.shape[-2:])
    flat_out = out.view(-1, *out.shape[-2:])
    for b in range(flat_frames.shape[0]):
        for first, end, lo, hi in groups:
            torch.mm(matrix64[first:end, lo:hi], flat_frames[b, lo:hi], out=flat_out[b, first:end])
    return out.to(frames.dtype)


def spectral_power(spec: torch.Tensor) -> torch.Tensor:
    """``re^2 + im^2`` of a complex spectrogram (the same float32 operations, one pass over the pairs)."""
    squares = torch.view_as_real(spec).square()
    return squares[..., 0] + squares[..., 1]


def steady_tail_length(n_fft: int, hop_length: int) -> int:
    """Length of the streaming sample tail once chunks are whole multiples of the hop."""
    return hop_length * math.ceil((n_fft - hop_length) / hop_length)


def fast_matmul(matrix: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``matrix @ frames`` in the frames' dtype, one batched product: what a front-end in training mode
    uses instead of :func:`frame_matmul` / :func:`banded_matmul` (a frame's rounding then depends on the
    batch and length, within float32 precision; tests bound the difference)."""
    return torch.matmul(matrix.to(frames.dtype), frames)


