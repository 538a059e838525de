"""Image augmentation preset: one random affine warp per image.

Distributions (each range is a constructor argument; the defaults are these):

* rotation: uniform in [0, 360) degrees;
* translation: x and y independently uniform in [-10, 10] pixels;
* rescaling: log-uniform in [1/1.6, 1.6];
* flip: horizontal, Bernoulli(0.5);
* shear: uniform in [-20, 20] degrees (x-shear);
* stretch: log-uniform in [1/1.3, 1.3]; ``stretch = s`` scales x by ``sqrt(s)`` and y by
  ``1/sqrt(s)`` (area preserved).

All parts are composed into one matrix and the image is resampled once (bilinear), so stacking
the six ops costs a single interpolation. Conventions for angle, shear and translation match
``torchvision.transforms.v2.functional.affine`` (the tests check this), which cannot express the
stretch itself. The forward map, about the image centre, is::

    x_out = T(translate) . R(rotation) . Shear_x(shear) . S(scale) . Stretch . Flip . x_in
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PARAM_NAMES = ("rotation_deg", "translate_px", "scale", "flip", "shear_deg", "stretch")


def _log_uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    """``exp(U(log lo, log hi))``: equal probability for ``x`` and ``1/x`` when ``lo = 1/hi``."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def _uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def affine_matrix(
    rotation_deg: float = 0.0,
    translate_px: Sequence[float] = (0.0, 0.0),
    scale: float = 1.0,
    flip: bool = False,
    shear_deg: float = 0.0,
    stretch: float = 1.0,
) -> Tensor:
    """Forward 3x3 homogeneous map in pixel coordinates centred on the image centre (y points down)."""
    if scale <= 0 or stretch <= 0:
        raise ValueError(f"scale and stretch must be positive, got {scale}, {stretch}")
    a = math.radians(rotation_deg)
    rotation = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    shear = torch.tensor([[1.0, -math.tan(math.radians(shear_deg))], [0.0, 1.0]], dtype=torch.float64)
    root = math.sqrt(stretch)
    stretch_m = torch.diag(torch.tensor([scale * root, scale / root], dtype=torch.float64))
    flip_m = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0], dtype=torch.float64))
    m = torch.eye(3, dtype=torch.float64)
    m[:2, :2] = rotation @ shear @ stretch_m @ flip_m
    m[0, 2], m[1, 2] = float(translate_px[0]), float(translate_px[1])
    return m


def warp_affine(img: Tensor, matrix: Tensor, interpolation: str = "bilinear", fill: float = 0.0) -> Tensor:
    """Resample ``(..., H, W)`` so that output pixel ``m @ p`` takes the input value at ``p``."""
    if img.dim() < 2:
        raise ValueError(f"expected an image tensor (..., H, W), got shape {tuple(img.shape)}")
    h, w = img.shape[-2:]
    lead = img.shape[:-2]
    x = img.reshape(1, -1, h, w)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    x = x.to(dtype)
    inverse = torch.linalg.inv(matrix)[:2].to(dtype)
    # Output pixel centres relative to the image centre, as in torchvision's _affine_grid.
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, dtype=dtype, device=img.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, dtype=dtype, device=img.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # (H, W, 3)
    src = pts @ inverse.T.to(img.device)  # (H, W, 2) source pixel coordinates
    grid = (src / torch.tensor([0.5 * w, 0.5 * h], dtype=dtype, device=img.device)).unsqueeze(0)
    out = F.grid_sample(x, grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    if fill != 0.0:
        inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=interpolation, align_corners=False)
        out = out + fill * (1.0 - inside)
    if not img.is_floating_point():
        out = out.round().clamp(torch.iinfo(img.dtype).min, torch.iinfo(img.dtype).max)
    return out.to(img.dtype).reshape(*lead, h, w)


class RandomAffineWarp(nn.Module):
    """Random rotation, translation, rescaling, flip, shear and stretch as one affine warp.

    Call on a ``(C, H, W)`` or ``(H, W)`` tensor (any leading dims share one draw). Pass a
    ``torch.Generator`` for reproducible draws, or ``params`` (from ``sample_params`` or written by
    hand) to apply an exact warp.
    """

    def __init__(
        self,
        rotation_deg: Sequence[float] = (0.0, 360.0),
        translate_px: float = 10.0,
        scale: Sequence[float] = (1 / 1.6, 1.6),
        flip_p: float = 0.5,
        shear_deg: float = 20.0,
        stretch: Sequence[float] = (1 / 1.3, 1.3),
        interpolation: str = "bilinear",
        fill: float = 0.0,
    ) -> None:
        super().__init__()
        if not (0 < scale[0] <= scale[1] and 0 < stretch[0] <= stretch[1]):
            raise ValueError(f"scale and stretch must be ranges 0 < lo <= hi, got {scale}, {stretch}")
        if rotation_deg[1] < rotation_deg[0] or translate_px < 0 or shear_deg < 0 or not 0 <= flip_p <= 1:
            raise ValueError("invalid image augmentation ranges")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.rotation_deg = (float(rotation_deg[0]), float(rotation_deg[1]))
        self.translate_px = float(translate_px)
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip_p = float(flip_p)
        self.shear_deg = float(shear_deg)
        self.stretch = (float(stretch[0]), float(stretch[1]))
        self.interpolation = interpolation
        self.fill = float(fill)

    def sample_params(self, generator: torch.Generator | None = None) -> dict:
        """One draw: ``rotation_deg``, ``translate_px`` (tx, ty), ``scale``, ``flip``, ``shear_deg``,
        ``stretch``."""
        t = self.translate_px
        return {
            "rotation_deg": _uniform(generator, *self.rotation_deg),
            "translate_px": (_uniform(generator, -t, t), _uniform(generator, -t, t)),
            "scale": _log_uniform(generator, *self.scale),
            "flip": bool(torch.rand((), generator=generator, dtype=torch.float64) < self.flip_p),
            "shear_deg": _uniform(generator, -self.shear_deg, self.shear_deg),
            "stretch": _log_uniform(generator, *self.stretch),
        }

    def forward(
        self, img: Tensor, generator: torch.Generator | None = None, params: dict | None = None
    ) -> Tensor:
        if params is None:
            params = self.sample_params(generator)
        unknown = set(params) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown image augmentation params: {', '.join(sorted(unknown))}")
        return warp_affine(img, affine_matrix(**params), self.interpolation, self.fill)

    def extra_repr(self) -> str:
        return (
            f"rotation_deg={self.rotation_deg}, translate_px={self.translate_px}, scale={self.scale}, "
            f"flip_p={self.flip_p}, shear_deg={self.shear_deg}, stretch={self.stretch}"
        )
