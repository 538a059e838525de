"""First-layer filters as a grid of patches (Krizhevsky et al. 2012, Fig. 3), each normalised on its own.

For audio models every filter is a frequency x time patch: a 1-D conv over mel channels has weight
``(out, mel, time)``, which *is* such a patch; a 2-D conv has a ``(freq, time)`` kernel; a window MLP's
first dense layer reads a flattened ``(mel, window)`` patch. Dilated kernels are drawn at their input
spacing, with blank columns between the taps. Image filters are drawn as grey or RGB patches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from torch import nn

from speechconv.errors import ConfigError
from speechconv.viz.common import VizModel, new_figure, save_figure, units_of


@dataclass
class FirstLayerFilters:
    """Filters as patches ``(n, rows, cols)`` (grey, signed) or ``(n, rows, cols, 3)`` (RGB)."""

    patches: np.ndarray
    layer: str
    description: str
    row_label: str
    col_label: str

    @property
    def rgb(self) -> bool:
        return self.patches.ndim == 4


def first_weight_layer(model: nn.Module) -> tuple[str, nn.Module, nn.Module]:
    """(unit name, unit, weight module) of the first convolution or linear layer in execution order."""
    for name, unit in units_of(model):
        for module in unit.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                return name, unit, module
    raise ConfigError(f"{type(model).__name__} has no convolution or linear layer to show")


def dilate(weight: np.ndarray, dilation: int, axis: int = -1) -> np.ndarray:
    """Place the taps of ``weight`` ``dilation`` apart along ``axis``, NaN in between."""
    if dilation == 1:
        return weight
    shape = list(weight.shape)
    taps = shape[axis]
    shape[axis] = (taps - 1) * dilation + 1
    out = np.full(shape, np.nan, dtype=np.float64)
    index = [slice(None)] * weight.ndim
    index[axis] = slice(None, None, dilation)
    out[tuple(index)] = weight
    return out


def first_layer_filters(viz: VizModel, max_filters: int | None = None) -> FirstLayerFilters:
    """Patches of the first layer's filters, in filter order (at most ``max_filters``)."""
    name, unit, module = first_weight_layer(viz.model)
    w = module.weight.detach().cpu().double().numpy()
    if max_filters is not None:
        w = w[:max_filters]
    audio = viz.task == "audio"
    rows, cols = ("frequency bin", "time (frames)") if audio else ("y (px)", "x (px)")
    if isinstance(module, nn.Conv1d):  # (out, channels, time): channels are the feature bins
        patches = dilate(w, module.dilation[0])
        what = f"{w.shape[0]} filters of {w.shape[1]} bins x {w.shape[2]} frames"
        rows = "input channel" if not audio else rows
    elif isinstance(module, nn.Conv2d):  # (out, in, rows, cols)
        w = dilate(dilate(w, module.dilation[1], -1), module.dilation[0], -2)
        what = f"{w.shape[0]} filters {module.kernel_size[0]}x{module.kernel_size[1]}"
        if w.shape[1] == 3:
            patches = w.transpose(0, 2, 3, 1)
        elif w.shape[1] == 1:
            patches = w[:, 0]
        else:
            patches = w.mean(axis=1)
            what += f", mean over {w.shape[1]} input channels"
    else:  # nn.Linear reading a flattened window or image
        shape = _linear_patch_shape(viz, unit, module.in_features)
        patches = w.reshape((w.shape[0],) + shape)
        if len(shape) == 3:
            patches = patches.transpose(0, 2, 3, 1) if shape[0] == 3 else patches.mean(axis=1)
        what = f"{w.shape[0]} units reading {'x'.join(map(str, shape))} inputs"
    return FirstLayerFilters(patches, name, what, rows, cols)


def _linear_patch_shape(viz: VizModel, unit: nn.Module, in_features: int) -> tuple[int, ...]:
    window, features = getattr(unit, "window", None), getattr(unit, "in_features", None)
    if window and features and window * features == in_features:
        return (features, window)  # window MLPs flatten feature-major
    if viz.input_shape and math.prod(viz.input_shape) == in_features:
        return tuple(viz.input_shape)
    raise ConfigError(f"cannot draw the first layer ({in_features} inputs) as patches of the model input")


def normalize_patches(patches: np.ndarray, rgb: bool) -> np.ndarray:
    """Per-filter normalisation: signed patches to ``w / max|w|`` in [-1, 1]; RGB patches to [0, 1]."""
    out = np.empty_like(patches, dtype=np.float64)
    for i, p in enumerate(patches):
        if rgb:
            lo, hi = np.nanmin(p), np.nanmax(p)
            out[i] = (p - lo) / (hi - lo) if hi > lo else 0.5
        else:
            scale = np.nanmax(np.abs(p))
            out[i] = p / scale if scale > 0 else 0.0
    return out


def tile(patches: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Mosaic of patches ``(n, h, w[, 3])`` on a NaN background, ``gap`` pixels apart, row-major."""
    n, h, w = patches.shape[:3]
    if columns is None:  # about as wide as tall, with few empty slots
        lines = max(1, round(math.sqrt(n * (w + gap) / (h + gap))))
        columns = math.ceil(n / lines)
    columns = max(1, min(columns, n))
    lines = math.ceil(n / columns)
    grid = np.full((lines * (h + gap) - gap, columns * (w + gap) - gap) + patches.shape[3:], np.nan)
    for i, p in enumerate(patches):
        r, c = divmod(i, columns)
        grid[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = p
    return grid


def plot_filters(viz: VizModel, out: str | os.PathLike[str], max_filters: int = 64) -> FirstLayerFilters:
    """Write the grid of first-layer filters to ``out``; returns the (unnormalised) patches."""
    filters = first_layer_filters(viz, max_filters)
    normed = normalize_patches(filters.patches, filters.rgb)
    if filters.rgb:
        grid = tile(normed)
        grid = np.where(np.isnan(grid), 1.0, grid)  # white gaps
        fig, ax = new_figure(figsize=(7, 7))
        ax.imshow(grid, interpolation="nearest")
    else:
        # frequency (or image y) runs up for audio, down for images
        if viz.task == "audio":
            normed = normed[:, ::-1]
        grid = tile(normed)
        h, w = grid.shape
        fig, ax = new_figure(figsize=(min(14, 3 + w / 12), min(12, 2 + h / 12)))
        cmap = _cmap("RdBu_r")
        image = ax.imshow(grid, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest", aspect="equal")
        fig.colorbar(image, ax=ax, fraction=0.03, label="w / max|w| per filter")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"first layer {filters.layer}: {filters.description}\n"
                 f"each patch: {filters.row_label} (up) x {filters.col_label} (right)"
                 if viz.task == "audio" else f"first layer {filters.layer}: {filters.description}")
    save_figure(fig, out)
    return filters


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="white")

