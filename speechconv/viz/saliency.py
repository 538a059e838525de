"""Saliency (Simonyan et al. 2014): the gradient of one class score with respect to the input features.

For an audio model the score is the class logit at one output frame (by default the frame where it is
largest). Every block pads causally in time, so the gradient is exactly zero outside that frame's
receptive field: the figure shows which time-frequency cells of the input the decision rests on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechconv.errors import ConfigError
from speechconv.viz.common import VizModel, new_figure, save_figure, show_spectrogram
from speechconv.viz.receptive_field import FieldSpan, end_frames, field_span, layer_field, time_extent


@dataclass
class Saliency:
    """``gradient`` has the input's shape (no batch axis); ``scores`` are the class logits over frames."""

    gradient: torch.Tensor
    class_index: int
    frame: int
    score: float
    scores: torch.Tensor


def saliency(model: nn.Module, x: torch.Tensor, class_index: int = 1, frame: int | None = None) -> Saliency:
    """Gradient of the ``class_index`` logit at output ``frame`` (default: its maximum) w.r.t. ``x`` (batch 1).

    Image models have one output per example; ``frame`` is then ignored. The model runs in eval mode.
    """
    if x.shape[0] != 1:
        raise ConfigError(f"saliency explains one example; got a batch of {x.shape[0]}")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            logits = model(x)  # (B, C, frames) or (B, C)
            classes = logits.shape[1]
            if not 0 <= class_index < classes:
                raise ConfigError(f"class index {class_index} out of range: the model has {classes} classes")
            scores = logits[0, class_index]
            if scores.dim() == 0:
                frame, score = 0, scores
            else:
                if scores.numel() == 0:
                    raise ConfigError("the input is shorter than the model's first output frame")
                frame = int(scores.argmax()) if frame is None else frame
                if not 0 <= frame < scores.numel():
                    raise ConfigError(f"frame {frame} outside the output frames 0..{scores.numel() - 1}")
                score = scores[frame]
            (gradient,) = torch.autograd.grad(score, x)
    finally:
        model.train(was_training)
    return Saliency(gradient[0].detach(), class_index, frame, float(score.detach()), scores.detach().reshape(-1))


def plot_saliency(viz: VizModel, x: torch.Tensor, out: str | os.PathLike[str], class_index: int | None = None,
                  frame: int | None = None) -> tuple[Saliency, FieldSpan]:
    """Draw the input, the saliency map under it, and (audio) the class score over time with the frame."""
    class_index = viz.keyword_index if class_index is None else class_index
    result = saliency(viz.model, x, class_index, frame)
    field = layer_field(viz.model, -1)
    n_rows, n_frames = x.shape[-2], x.shape[-1]
    span = field_span(field, result.frame, n_frames, n_rows)
    label = viz.labels[class_index] if class_index < len(viz.labels) else f"class {class_index}"
    grad = result.gradient.cpu().double().numpy()
    features = x[0].detach().cpu().numpy()
    if viz.task != "audio":
        fig, (top, bottom) = new_figure(1, 2, figsize=(9, 4))
        plane = features.transpose(1, 2, 0) if features.shape[0] == 3 else features[0]
        top.imshow(plane, cmap="gray", interpolation="nearest")
        top.set_title("input")
        heat = np.abs(grad).max(axis=0)
        bottom.imshow(heat, cmap="hot", interpolation="nearest")
        bottom.set_title(f"|d {label} / d input| (score {result.score:.3g})")
        save_figure(fig, out)
        return result, span
    fig, (top, middle, bottom) = new_figure(3, 1, figsize=(10, 7.5), sharex=True,
                                            gridspec_kw={"height_ratios": [2, 2, 1]})
    show_spectrogram(top, features, viz)
    top.set_xlabel("")
    hop_s = viz.hop_length / viz.sample_rate
    extent = (0.0, n_frames * hop_s, -0.5, n_rows - 0.5)
    limit = float(np.abs(grad).max()) or 1.0
    shown = middle.imshow(grad, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", vmin=-limit,
                          vmax=limit, interpolation="nearest")
    fig.colorbar(shown, ax=middle, fraction=0.02, pad=0.01)
    f0, f1 = span.visible_frames
    for ax in (top, middle):
        ax.axvline(f0 * hop_s, color="k", ls="--", lw=1)
        ax.axvline((f1 + 1) * hop_s, color="k", ls="--", lw=1)
    middle.set_ylabel("feature bin")
    middle.set_title(f"saliency: d({label} logit at output frame {result.frame}) / d features; "
                     f"receptive field frames {span.frames[0]}..{span.frames[1]} (dashed)")
    scores = result.scores.cpu().numpy()
    if field.time is not None:
        centres = (end_frames(field.time, len(scores)) + 0.5) * hop_s
        bottom.plot(centres, scores, lw=1.2)
        bottom.plot([centres[result.frame]], [result.score], "o", color="C3")
        bottom.set_xlim(*time_extent(viz, None, 0, n_frames))
    bottom.set_ylabel(f"{label} logit")
    bottom.set_xlabel("time (s)")
    save_figure(fig, out)
    return result, span
