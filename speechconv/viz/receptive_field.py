"""Analytic receptive field of a unit, from the block math, and the gradient-measured one to compare.

Along time (the last axis) the field of layer ``l`` is the composition of the geometries of units
``0..l`` (:class:`~speechconv.blocks.functional.ReceptiveField`), exactly as ``speechconv inspect``
computes it; output frame ``t`` sees input frames ``span_of(t)``. Along the rows (frequency bins of
2-D audio models, image height) the same composition runs over the first axis of 2-D blocks, until a
block mixes all rows (a 1-D conv over mel channels, flattening, frequency pooling, a dense layer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from speechconv.blocks.conv import ConvPool1d, _ConvPoolNd
from speechconv.blocks.dense import Dense
from speechconv.blocks.functional import AxisGeometry, ReceptiveField, receptive_field
from speechconv.blocks.residual import Parallel, Residual
from speechconv.blocks.streaming import StreamingModule, StreamingSequential
from speechconv.errors import ConfigError
from speechconv.viz.common import (
    VizModel,
    new_figure,
    resolve_layer,
    save_figure,
    show_spectrogram,
    unit_output,
    units_of,
)


@dataclass(frozen=True)
class LayerField:
    """Receptive fields of one unit along time and rows (None: the unit sees the whole axis)."""

    index: int
    name: str
    time: ReceptiveField | None
    rows: ReceptiveField | None


@dataclass(frozen=True)
class FieldSpan:
    """Where output position ``(row, t)`` of a unit looks in an input of ``n_frames`` x ``n_rows``.

    ``frames``/``rows`` are the analytic inclusive ranges (may reach into the padding, below 0 or past the
    end); ``visible_frames``/``visible_rows`` are clipped to the input.
    """

    layer: LayerField
    t: int
    row: int | None
    frames: tuple[int, int]
    rows: tuple[int, int]
    visible_frames: tuple[int, int]
    visible_rows: tuple[int, int]

    def seconds(self, hop_length: int, n_fft: int, sample_rate: int) -> tuple[float, float]:
        """Audio the visible frames cover: frame ``k`` is samples ``[k * hop, k * hop + n_fft)``."""
        first, last = self.visible_frames
        return first * hop_length / sample_rate, (last * hop_length + n_fft) / sample_rate


# --- geometry along the rows axis -----------------------------------------------------------------
_MIXES_ALL_ROWS = (ConvPool1d, Dense)


def row_geometry(unit: nn.Module) -> list[AxisGeometry] | None:
    """Geometry of ``unit`` along the first spatial axis of (B, C, rows, time); None if it mixes all rows."""
    if isinstance(unit, _MIXES_ALL_ROWS):
        return None
    if isinstance(unit, _ConvPoolNd):  # 2-D
        geoms = [AxisGeometry(unit.kernel_size[0], unit.stride[0], unit.dilation[0], unit.pads[0][0])]
        if unit.pool_type is not None:
            geoms.append(AxisGeometry(unit._pool_span()[0], unit.pool_stride[0], 1, 0))
        return geoms
    if isinstance(unit, StreamingSequential):
        return _concat(row_geometry(layer) for layer in unit if isinstance(layer, StreamingModule))
    if isinstance(unit, Residual):
        return row_geometry(unit.body)
    if isinstance(unit, Parallel):
        branches = [row_geometry(b) for b in unit.branches]
        if any(b is None for b in branches):
            return None
        return max(branches, key=lambda g: receptive_field(g).size)
    if isinstance(getattr(unit, "conv", None), _ConvPoolNd):  # wrappers such as the neocognitron S-layer
        return row_geometry(unit.conv)
    name = type(unit).__name__
    if name in ("AddChannelAxis", "LocalResponseNorm", "AdaptiveAvgPool2d"):
        return []  # row-preserving
    if name in ("ZeroPad2d", "Pool2d"):  # symmetric image units: the same geometry on both axes
        return unit.geometry()
    return None  # anything else (flatten, frequency pooling, global pooling, window MLPs) mixes all rows


def _concat(parts) -> list[AxisGeometry] | None:
    out: list[AxisGeometry] = []
    for part in parts:
        if part is None:
            return None
        out.extend(part)
    return out


def _sees_everything(unit: nn.Module) -> bool:
    return isinstance(unit, Dense) or type(unit).__name__ == "GlobalAvgPool"


def layer_field(model: nn.Module, layer: int | str) -> LayerField:
    """Analytic receptive field of unit ``layer`` (index into the top-level units, or its inspect name)."""
    index, name, _ = resolve_layer(model, layer)
    time: ReceptiveField | None = ReceptiveField()
    rows: ReceptiveField | None = ReceptiveField()
    for _, unit in units_of(model)[: index + 1]:
        if time is not None:
            time = None if _sees_everything(unit) else receptive_field_after(time, unit.geometry())
        if rows is not None:
            geoms = row_geometry(unit)
            rows = None if geoms is None else receptive_field_after(rows, geoms)
    return LayerField(index, name, time, rows)


def receptive_field_after(field: ReceptiveField, geometry: Sequence[AxisGeometry]) -> ReceptiveField:
    for g in geometry:
        field = field.then(g)
    return field


def field_span(field: LayerField, t: int, n_frames: int, n_rows: int, row: int | None = None) -> FieldSpan:
    """Input frames and rows that output position ``(row, t)`` of the unit sees (row None: all rows)."""
    frames = field.time.span_of(t) if field.time is not None else (0, n_frames - 1)
    if field.rows is not None and row is not None:
        rows = field.rows.span_of(row)
    else:
        rows = (0, n_rows - 1)
    return FieldSpan(field, t, row, frames, rows, _clip(frames, n_frames), _clip(rows, n_rows))


def _clip(span: tuple[int, int], n: int) -> tuple[int, int]:
    return max(span[0], 0), min(span[1], n - 1)


# --- measured by gradient ----------------------------------------------------------------------------
def neuron_index(out_shape: Sequence[int], channel: int, position: int | Sequence[int] | None) -> tuple[int, ...]:
    """Index ``(0, channel, *spatial)`` into a unit output of ``out_shape`` (with batch axis).

    ``position`` None is the centre of every spatial axis; an int is the last (time) axis with the
    others at their centre; a sequence gives every spatial axis.
    """
    spatial = list(out_shape[2:])
    if not 0 <= channel < out_shape[1]:
        raise ConfigError(f"channel {channel} out of range: the layer has {out_shape[1]} channels")
    centre = [n // 2 for n in spatial]
    if position is None:
        pos = centre
    elif isinstance(position, int):
        pos = centre[:-1] + [position] if spatial else []
        if not spatial and position not in (0, -1):
            raise ConfigError("this layer has no time axis (a fully connected output): leave the position out")
    else:
        pos = [int(p) for p in position]
        if len(pos) != len(spatial):
            raise ConfigError(f"position needs {len(spatial)} value(s) for a layer output of shape "
                              f"{tuple(out_shape[1:])}, got {list(position)}")
    for p, n in zip(pos, spatial):
        if not -n <= p < n:
            raise ConfigError(f"position {list(pos)} outside the layer output {tuple(out_shape[2:])}")
    return (0, channel) + tuple(p % n for p, n in zip(pos, spatial))


def gradient_support(model: nn.Module, layer: int | str, x: torch.Tensor, index: tuple[int, ...],
                     channel_sum: bool = False) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(frames, rows) ranges of the input on which the unit output at ``index`` depends, by backpropagation.

    With ``channel_sum`` the sum over channels at that position is used (robust to a dead unit). Returns
    None when the gradient is zero everywhere.
    """
    _, _, unit = resolve_layer(model, layer)
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = unit_output(model, unit, x)
        target = out[(index[0], slice(None)) + index[2:]].sum() if channel_sum else out[index]
        (grad,) = torch.autograd.grad(target, x)
    magnitude = grad[0].abs()
    if magnitude.dim() == 3:  # (C, H, W) image: any channel
        magnitude = magnitude.sum(0)
    nonzero = magnitude > 0
    if not bool(nonzero.any()):
        return None
    cols = torch.nonzero(nonzero.any(0)).flatten()
    rows = torch.nonzero(nonzero.any(-1)).flatten()
    return (int(cols[0]), int(cols[-1])), (int(rows[0]), int(rows[-1]))


# --- the figure -------------------------------------------------------------------------------------
def plot_receptive_field(viz: VizModel, x: torch.Tensor, layer: int | str, t: int | None = None,
                         out: str | os.PathLike[str] | None = None, row: int | None = None) -> FieldSpan:
    """Shade the analytic receptive field of output frame ``t`` of unit ``layer`` on the input ``x``.

    ``x`` is one example with batch axis: features (1, F, T) or an image (1, C, H, W). ``t`` defaults to the
    middle output frame of the unit, ``row`` (2-D units) to the middle row. Returns the span.
    """
    field = layer_field(viz.model, layer)
    with torch.no_grad():
        unit_out = unit_output(viz.model, resolve_layer(viz.model, layer)[2], x)
    n_rows, n_frames = x.shape[-2], x.shape[-1]
    if unit_out.dim() >= 3:
        n_out = unit_out.shape[-1]
        t = n_out // 2 if t is None else t
        if not 0 <= t < n_out:
            raise ConfigError(f"frame {t} outside layer {field.name}'s output frames 0..{n_out - 1}")
        if unit_out.dim() == 4 and field.rows is not None:
            row = unit_out.shape[2] // 2 if row is None else row
            if not 0 <= row < unit_out.shape[2]:
                raise ConfigError(f"row {row} outside layer {field.name}'s output rows 0..{unit_out.shape[2] - 1}")
        else:
            row = None
    else:
        t, row = 0, None
    span = field_span(field, t, n_frames, n_rows, row)
    if out is not None:
        _draw(viz, x, span, out)
    return span


def _draw(viz: VizModel, x: torch.Tensor, span: FieldSpan, out) -> None:
    from matplotlib.patches import Rectangle

    fig, ax = new_figure(figsize=(9, 4))
    image = x[0].detach().cpu().numpy()
    (f0, f1), (r0, r1) = span.visible_frames, span.visible_rows
    name = span.layer.name
    if viz.task == "audio":
        show_spectrogram(ax, image, viz)
        hop_s = viz.hop_length / viz.sample_rate
        left, right = f0 * hop_s, (f1 + 1) * hop_s
        start_s, end_s = span.seconds(viz.hop_length, viz.n_fft, viz.sample_rate)
        where = f"frames {span.frames[0]}..{span.frames[1]}, audio {start_s:.3f}-{end_s:.3f} s"
    else:
        if image.shape[0] == 3:
            ax.imshow(_unit_range(image).transpose(1, 2, 0), interpolation="nearest")
        else:
            ax.imshow(image[0], cmap="gray", interpolation="nearest")
        left, right = f0 - 0.5, f1 + 0.5
        where = f"columns {span.frames[0]}..{span.frames[1]}"
    ax.axvspan(left, right, color="cyan", alpha=0.25, lw=0)
    bottom, top = r0 - 0.5, r1 + 0.5
    ax.add_patch(Rectangle((left, bottom), right - left, top - bottom, fill=False, ec="cyan", lw=2))
    if span.row is not None:
        where += f", rows {span.rows[0]}..{span.rows[1]}"
    size = span.layer.time.size if span.layer.time is not None else "all"
    ax.set_title(f"receptive field of layer {name}, output frame {span.t}: {where} (size {size})")
    save_figure(fig, out)


def _unit_range(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def end_frames(field: ReceptiveField, n: int) -> np.ndarray:
    """Last input frame that each of ``n`` output frames sees: ``offset + t * stride + size - 1``."""
    return field.offset + np.arange(n) * field.stride + field.size - 1


def time_extent(viz: VizModel, field: ReceptiveField | None, n: int, n_frames: int) -> tuple[float, float]:
    """x-extent in seconds that puts output frame ``t`` of a unit over the input frame it ends at, on the
    axis where input frame ``k`` fills ``[k, k + 1) * hop`` (as :func:`show_spectrogram` draws it)."""
    hop_s = viz.hop_length / viz.sample_rate
    if field is None or n == 0:
        return 0.0, n_frames * hop_s
    ends = end_frames(field, n)
    half = field.stride / 2
    return (ends[0] + 0.5 - half) * hop_s, (ends[-1] + 0.5 + half) * hop_s
