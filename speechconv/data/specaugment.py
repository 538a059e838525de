"""Feature-level augmentation on spectrograms: SpecAugment masking and VTLP frequency warping.

Both ops take a ``(F, T)`` or ``(B, F, T)`` tensor (frequency bins by frames) and a
``torch.Generator``; in a batch every item gets its own random draw. All randomness comes from the
generator, so a seeded generator reproduces the output exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _check_spec(spec: Tensor, op: str) -> Tensor:
    if not isinstance(spec, Tensor) or spec.dim() not in (2, 3):
        shape = tuple(spec.shape) if isinstance(spec, Tensor) else type(spec).__name__
        raise ValueError(f"{op}: expected a (F, T) or (B, F, T) tensor, got {shape}")
    return spec


def _int_range(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``w`` means widths 0..w; ``(lo, hi)`` means widths lo..hi (inclusive)."""
    lo, hi = (0, value) if isinstance(value, (int, float)) else value
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi < lo:
        raise ValueError(f"{name} must be a width w >= 0 or a range (lo, hi) with 0 <= lo <= hi, got {value}")
    return lo, hi


def _randint(generator: torch.Generator | None, low: int, high: int) -> int:
    """Uniform integer in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


class SpecAugment:
    """Frequency and time masking (Park et al., 2019), no time warping.

    Parameters
    ----------
    freq_masks, time_masks : number of masks along each axis.
    freq_width, time_width : mask width range in bins / frames: ``w`` draws 0..w, ``(lo, hi)`` draws
        lo..hi, uniformly. Widths are capped by the axis length.
    max_time_ratio : adaptive cap (Park et al., 2020): a time mask is at most this fraction of T.
    mask_value : value written into masked cells, a number or ``"mean"`` (mean of the item).
    p : probability of augmenting each item.
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int | Sequence[int] = 15,
        time_masks: int = 2,
        time_width: int | Sequence[int] = 25,
        max_time_ratio: float = 1.0,
        mask_value: float | str = 0.0,
        p: float = 1.0,
    ) -> None:
        if freq_masks < 0 or time_masks < 0:
            raise ValueError("SpecAugment: mask counts must be >= 0")
        if not 0.0 < max_time_ratio <= 1.0:
            raise ValueError(f"SpecAugment: max_time_ratio must be in (0, 1], got {max_time_ratio}")
        if isinstance(mask_value, str) and mask_value != "mean":
            raise ValueError(f"SpecAugment: mask_value must be a number or 'mean', got {mask_value!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"SpecAugment: p must be in [0, 1], got {p}")
        self.freq_masks = int(freq_masks)
        self.time_masks = int(time_masks)
        self.freq_width = _int_range(freq_width, "SpecAugment freq_width")
        self.time_width = _int_range(time_width, "SpecAugment time_width")
        self.max_time_ratio = float(max_time_ratio)
        self.mask_value = mask_value
        self.p = float(p)

    def sample_params(self, generator: torch.Generator | None, n_freq: int, n_time: int) -> dict:
        """Draw ``{"freq": [(start, width), ...], "time": [(start, width), ...]}`` for one item."""
        time_cap = min(n_time, int(self.max_time_ratio * n_time))
        return {
            "freq": self._draw(generator, self.freq_masks, self.freq_width, n_freq, n_freq),
            "time": self._draw(generator, self.time_masks, self.time_width, n_time, time_cap),
        }

    @staticmethod
    def _draw(generator, count: int, width: tuple[int, int], size: int, cap: int) -> list[tuple[int, int]]:
        masks = []
        for _ in range(count):
            hi = min(width[1], cap)
            w = _randint(generator, min(width[0], hi), hi)
            masks.append((_randint(generator, 0, size - w), w))
        return masks

    def apply(self, spec: Tensor, params: dict) -> Tensor:
        """Mask one ``(F, T)`` item with explicit params."""
        out = spec.clone()
        value = spec.mean() if self.mask_value == "mean" else self.mask_value
        for start, width in params["freq"]:
            out[start : start + width, :] = value
        for start, width in params["time"]:
            out[:, start : start + width] = value
        return out

    def __call__(self, spec: Tensor, generator: torch.Generator | None = None) -> Tensor:
        spec = _check_spec(spec, "SpecAugment")
        items = spec.unsqueeze(0) if spec.dim() == 2 else spec
        out = []
        for item in items:
            if float(torch.rand((), generator=generator)) < self.p:
                item = self.apply(item, self.sample_params(generator, item.shape[0], item.shape[1]))
            out.append(item)
        result = torch.stack(out)
        return result[0] if spec.dim() == 2 else result


def vtlp_source_positions(n_bins: int, alpha: float, boundary: float = 0.8) -> Tensor:
    """Where each output bin reads from under the piecewise-linear VTLP warp (Jaitly & Hinton, 2013).

    The forward warp maps an input position ``f`` on the axis ``[0, top]`` (``top = n_bins - 1``) to

    * ``alpha * f`` for ``f <= f_hi * min(alpha, 1) / alpha``,
    * ``top - (top - f_hi * min(alpha, 1)) / (top - f_hi * min(alpha, 1) / alpha) * (top - f)`` above,

    with ``f_hi = boundary * top``; both ends stay fixed. Returns its inverse evaluated at every
    output bin, i.e. the fractional input positions to interpolate from.
    """
    if n_bins < 2:
        raise ValueError(f"VTLP: need at least 2 frequency bins, got {n_bins}")
    if alpha <= 0:
        raise ValueError(f"VTLP: alpha must be positive, got {alpha}")
    top = float(n_bins - 1)
    f_hi = boundary * top
    knee_in = f_hi * min(alpha, 1.0) / alpha
    knee_out = f_hi * min(alpha, 1.0)
    out_pos = torch.arange(n_bins, dtype=torch.float64)
    # Inverse of the forward warp: slope 1/alpha below the knee, straight line to (top, top) above.
    low = out_pos / alpha
    high = top - (top - knee_in) / (top - knee_out) * (top - out_pos)
    return torch.where(out_pos <= knee_out, low, high).clamp(0.0, top)


def vtlp_warp(spec: Tensor, alpha: float, boundary: float = 0.8) -> Tensor:
    """Warp the frequency axis (dim -2) of a ``(..., F, T)`` spectrogram; ``alpha > 1`` moves content up."""
    n_bins = spec.shape[-2]
    src = vtlp_source_positions(n_bins, alpha, boundary)
    lo = src.floor().long().clamp(max=n_bins - 1)
    hi = (lo + 1).clamp(max=n_bins - 1)
    frac = (src - lo.to(torch.float64)).to(spec.dtype).unsqueeze(-1)
    return spec[..., lo, :] * (1 - frac) + spec[..., hi, :] * frac


class VTLP:
    """Vocal tract length perturbation as a frequency-axis warp of a spectrogram.

    ``alpha`` is drawn uniformly from ``alpha=(lo, hi)`` per item. On a linear-frequency spectrogram
    this is exactly the Jaitly & Hinton warp; on a mel spectrogram it warps the mel axis
    piecewise-linearly (the common approximation). ``boundary`` is ``F_hi`` as a fraction of the
    axis: above it the warp bends back so the top bin stays in place.
    """

    def __init__(self, alpha: Sequence[float] = (0.9, 1.1), boundary: float = 0.8, p: float = 1.0) -> None:
        lo, hi = (float(alpha), float(alpha)) if isinstance(alpha, (int, float)) else map(float, alpha)
        if not 0.0 < lo <= hi:
            raise ValueError(f"VTLP: alpha must be a range (lo, hi) with 0 < lo <= hi, got {alpha}")
        if not 0.0 < boundary < 1.0:
            raise ValueError(f"VTLP: boundary must be in (0, 1), got {boundary}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"VTLP: p must be in [0, 1], got {p}")
        self.alpha = (lo, hi)
        self.boundary = float(boundary)
        self.p = float(p)

    def sample_params(self, generator: torch.Generator | None) -> dict:
        lo, hi = self.alpha
        return {"alpha": lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))}

    def apply(self, spec: Tensor, alpha: float) -> Tensor:
        return vtlp_warp(spec, alpha, self.boundary)

    def __call__(self, spec: Tensor, generator: torch.Generator | None = None) -> Tensor:
        spec = _check_spec(spec, "VTLP")
        items = spec.unsqueeze(0) if spec.dim() == 2 else spec
        out = []
        for item in items:
            if float(torch.rand((), generator=generator)) < self.p:
                item = self.apply(item, **self.sample_params(generator))
            out.append(item)
        result = torch.stack(out)
        return result[0] if spec.dim() == 2 else result
