"""Receptive field by gradient: fix one neuron as the target and learn the input that drives it.

Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014; Mahendran & Vedaldi 2016): starting
from small noise, Adam ascends

    a(x) - l2 * sum(x^2) - tv * sum((x[.., i+1, :] - x[.., i, :])^2 + (x[.., j+1] - x[.., j])^2)

where ``a`` is the chosen neuron's output. Inputs outside the neuron's receptive field get no gradient
from ``a``, so only the regularisers act there and they fade towards zero: the learned input shows the
field the block math predicts, which the figure draws on top for comparison.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from speechconv.errors import ConfigError
from speechconv.viz.common import VizModel, new_figure, resolve_layer, save_figure, unit_output
from speechconv.viz.receptive_field import FieldSpan, field_span, gradient_support, layer_field, neuron_index


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between neighbours along the last two axes."""
    tv = (x[..., 1:] - x[..., :-1]).pow(2).sum()
    if x.dim() >= 2 and x.shape[-2] > 1:
        tv = tv + (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    return tv


def maximize_activation(
    model: nn.Module,
    layer: int | str,
    channel: int,
    position: int | Sequence[int] | None,
    input_shape: Sequence[int],
    steps: int = 200,
    lr: float = 0.05,
    l2: float = 1e-3,
    tv: float = 1e-2,
    seed: int = 0,
    init_std: float = 0.1,
) -> tuple[torch.Tensor, list[float]]:
    """Learn the input (``input_shape``, no batch axis) that maximises one neuron of unit ``layer``.

    The neuron is ``channel`` at ``position`` of the unit's output (see
    :func:`~speechconv.viz.receptive_field.neuron_index`). Returns the learned input and the neuron's
    activation before each step and after the last (``steps + 1`` values). If the neuron is off at the
    starting noise (a rectified unit with zero gradient), the noise is redrawn at twice the scale, up to
    8 times, from the same seeded generator. The model's weights and mode
    are left as they were; it runs in eval mode.
    """
    if steps < 0 or lr <= 0 or l2 < 0 or tv < 0:
        raise ConfigError(f"need steps >= 0, lr > 0, l2 >= 0, tv >= 0; got {steps}, {lr}, {l2}, {tv}")
    _, _, unit = resolve_layer(model, layer)
    generator = torch.Generator().manual_seed(seed)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    history: list[float] = []
    try:
        with torch.enable_grad():
            x = _live_start(model, unit, channel, position, tuple(input_shape), init_std, generator, device)
            index = neuron_index(unit_output(model, unit, x.detach()[None]).shape, channel, position)
            optimizer = torch.optim.Adam([x], lr=lr)
            for step in range(steps + 1):
                activation = unit_output(model, unit, x[None])[index]
                history.append(float(activation.detach()))
                if step == steps:
                    break
                objective = activation - l2 * x.pow(2).sum() - tv * total_variation(x)
                (grad,) = torch.autograd.grad(-objective, x)
                x.grad = grad
                optimizer.step()
    finally:
        model.train(was_training)
    return x.detach(), history


def _live_start(model: nn.Module, unit: nn.Module, channel: int, position, shape: tuple[int, ...], init_std: float,
                generator: torch.Generator, device: torch.device, tries: int = 8) -> torch.Tensor:
    """Noise input at which the neuron has a gradient. A rectified neuron can be off (zero output and
    gradient) for small noise; then the noise is drawn again from the same generator at twice the scale."""
    for _ in range(tries):
        x = (init_std * torch.randn(shape, generator=generator)).to(device).requires_grad_(True)
        out = unit_output(model, unit, x[None])
        (grad,) = torch.autograd.grad(out[neuron_index(out.shape, channel, position)], x)
        if bool(grad.abs().gt(0).any()):
            return x
        init_std *= 2
    raise ConfigError(f"the neuron (channel {channel}) stays off (zero gradient) for noise inputs up to std "
                      f"{init_std / 2:g}; choose another channel or position")


@dataclass
class MaximizeResult:
    """The learned input, the activation history, the analytic span and the span measured by gradient."""

    input: torch.Tensor
    history: list[float]
    index: tuple[int, ...]
    analytic: FieldSpan
    measured: tuple[tuple[int, int], tuple[int, int]] | None


def default_input_shape(viz: VizModel, layer: int | str) -> tuple[int, ...]:
    """Audio: the model's features over twice the layer's receptive field (at least 32 frames)."""
    if viz.task != "audio":
        return tuple(viz.input_shape)
    field = layer_field(viz.model, layer).time
    frames = max(32, 2 * field.size) if field is not None else viz.input_shape[-1]
    return (viz.input_shape[0], frames)


def plot_maximize(
    viz: VizModel,
    layer: int | str,
    channel: int = 0,
    position: int | Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    out: str | os.PathLike[str] | None = None,
    **options,
) -> MaximizeResult:
    """Run :func:`maximize_activation` and draw the learned input with the analytic (solid) and the
    gradient-measured (dashed) receptive field, and the activation over the steps."""
    shape = tuple(input_shape) if input_shape is not None else default_input_shape(viz, layer)
    x, history = maximize_activation(viz.model, layer, channel, position, shape, **options)
    _, name, unit = resolve_layer(viz.model, layer)
    with torch.no_grad():
        out_shape = unit_output(viz.model, unit, x[None]).shape
    index = neuron_index(out_shape, channel, position)
    spatial = index[2:]
    t = spatial[-1] if spatial else 0
    row = spatial[0] if len(spatial) == 2 else None
    analytic = field_span(layer_field(viz.model, layer), t, shape[-1], shape[-2], row)
    measured = gradient_support(viz.model, layer, x[None], index)
    result = MaximizeResult(x, history, index, analytic, measured)
    if out is not None:
        _draw(viz, name, result, out)
    return result


def _draw(viz: VizModel, name: str, result: MaximizeResult, out) -> None:
    from matplotlib.patches import Rectangle

    fig, (ax, curve) = new_figure(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    image = result.input.cpu().numpy()
    if image.ndim == 3 and image.shape[0] == 3:
        lo, hi = image.min(), image.max()
        ax.imshow(((image - lo) / (hi - lo + 1e-12)).transpose(1, 2, 0), interpolation="nearest")
    else:
        plane = image if image.ndim == 2 else image.mean(0)
        limit = float(np.abs(plane).max()) or 1.0
        origin = "lower" if viz.task == "audio" else "upper"
        shown = ax.imshow(plane, cmap="RdBu_r", vmin=-limit, vmax=limit, origin=origin, aspect="auto",
                          interpolation="nearest")
        fig.colorbar(shown, ax=ax, fraction=0.03)
    boxes = [(result.analytic.visible_frames, result.analytic.visible_rows, "-", "analytic")]
    if result.measured is not None:
        boxes.append((result.measured[0], result.measured[1], "--", "by gradient"))
    for (f0, f1), (r0, r1), style, label in boxes:
        ax.add_patch(Rectangle((f0 - 0.5, r0 - 0.5), f1 - f0 + 1, r1 - r0 + 1, fill=False, ec="k", lw=2,
                               ls=style, label=f"{label}: frames {f0}..{f1}"))
    ax.legend(loc="upper left", fontsize=8)
    what = "time (frames)" if viz.task == "audio" else "x (px)"
    ax.set_xlabel(what)
    ax.set_ylabel("feature bin" if viz.task == "audio" else "y (px)")
    position = ", ".join(map(str, result.index[2:])) or "-"
    ax.set_title(f"input maximising layer {name}, channel {result.index[1]}, position ({position})")
    curve.plot(result.history)
    curve.set_xlabel("step")
    curve.set_ylabel("activation")
    curve.set_title(f"{result.history[0]:.3g} -> {result.history[-1]:.3g}")
    save_figure(fig, out)
