"""Feature maps over time: every top-level unit's output for one input, as channels x frames images.

A 2-D unit's output (channels, rows, frames) is drawn with its rows stacked inside each channel
(channel-major, as :class:`~speechconv.blocks.reshape.FlattenFrequency` orders them). Output frame ``t``
of a unit is drawn above the input frame it ends at, so all maps share the spectrogram's time axis.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from speechconv.viz.common import VizModel, new_figure, save_figure, show_spectrogram, units_of
from speechconv.viz.receptive_field import layer_field, time_extent


@torch.no_grad()
def collect_activations(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, output) of every top-level unit for the batch ``x``, in execution order (eval mode)."""
    seen: list[tuple[str, torch.Tensor]] = []

    def hook(name):
        def record(module, args, output):
            seen.append((name, output.detach()))
        return record

    handles = [unit.register_forward_hook(hook(name)) for name, unit in units_of(model)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return seen


def as_map(output: torch.Tensor) -> np.ndarray:
    """One example's unit output as a 2-D map: (C, T) as is, (C, R, T) -> (C * R, T), (N,) -> (N, 1)."""
    a = output.cpu().double().numpy()
    if a.ndim == 1:
        return a[:, None]
    return a.reshape(-1, a.shape[-1])


def plot_activations(viz: VizModel, x: torch.Tensor, out: str | os.PathLike[str]) -> list[tuple[str, np.ndarray]]:
    """Draw the input and each unit's output map for the example ``x`` (batch of 1); returns the maps."""
    outputs = collect_activations(viz.model, x)
    maps = [(name, as_map(output[0])) for name, output in outputs]
    panels = len(maps) + 1
    fig, axes = new_figure(panels, 1, figsize=(10, 1.9 * panels + 0.5), sharex=viz.task == "audio", squeeze=False)
    axes = axes[:, 0]
    features = x[0].detach().cpu().numpy()
    n_frames = features.shape[-1]
    if viz.task == "audio":
        show_spectrogram(axes[0], features, viz)
        fig.colorbar(axes[0].images[0], ax=axes[0], fraction=0.02, pad=0.01)
        axes[0].set_xlabel("")
    else:
        plane = features.transpose(1, 2, 0) if features.shape[0] == 3 else features[0]
        axes[0].imshow(_unit_range(plane), cmap="gray", interpolation="nearest", aspect="auto")
        axes[0].set_title("input")
    for i, (ax, (name, image)) in enumerate(zip(axes[1:], maps)):
        field = layer_field(viz.model, i).time
        kwargs = {}
        if viz.task == "audio" and image.shape[1] > 1:
            # channel 0 at the bottom and, inside each channel, frequency rows upwards like the spectrogram
            left, right = time_extent(viz, field, image.shape[1], n_frames)
            kwargs.update(extent=(left, right, -0.5, image.shape[0] - 0.5), origin="lower")
        shown = ax.imshow(image, aspect="auto", cmap="viridis", interpolation="nearest", **kwargs)
        fig.colorbar(shown, ax=ax, fraction=0.02, pad=0.01)
        unit = units_of(viz.model)[i][1]
        shape = "x".join(map(str, outputs[i][1].shape[1:]))
        ax.set_title(f"{name} ({type(unit).__name__}): output {shape}", fontsize=9)
        ax.set_ylabel("channel x row" if outputs[i][1].dim() == 4 else "channel")
    if viz.task == "audio":
        axes[-1].set_xlabel("time (s)")
    save_figure(fig, out)
    return maps


def _unit_range(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
