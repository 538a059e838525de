"""What every view needs: a model with its front-end, its units, inputs from files, and PNG output.

:func:`load_viz_model` is the one place that turns ``--model`` into a :class:`VizModel`: a registered
model name (random weights, default log-mel front-end), a pretrained directory or bundled name, or a
Lightning ``.ckpt`` of the audio or image training module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from speechconv.blocks.streaming import StreamingModule
from speechconv.errors import ConfigError, SpeechconvError
from speechconv.frontends import DEFAULT_FRONTEND  # the front-end of a registered model built by name


@dataclass
class VizModel:
    """A model ready for the views, in eval mode.

    ``frontend`` is None for image models. ``keyword_index`` is the class that saliency explains by default.
    """

    model: nn.Module
    task: str  # "audio" or "image"
    name: str
    frontend: nn.Module | None = None
    labels: list[str] = field(default_factory=list)
    keyword_index: int = 1
    input_shape: tuple[int, ...] = ()  # one example without batch axis, for views that need no file

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.sample_rate) if self.frontend is not None else 0

    @property
    def hop_length(self) -> int:
        return int(self.frontend.hop_length) if self.frontend is not None else 1

    @property
    def n_fft(self) -> int:
        return int(self.frontend.n_fft) if self.frontend is not None else 1

    def frame_seconds(self, frames: np.ndarray | float) -> np.ndarray | float:
        """Start time in seconds of feature frame(s) ``k`` (frame ``k`` covers ``[k * hop, k * hop + n_fft)``)."""
        return np.asarray(frames, dtype=np.float64) * self.hop_length / self.sample_rate


def load_viz_model(spec: str, frontend: dict[str, Any] | None = None) -> VizModel:
    """Model for the views from a registered name, a pretrained directory/name, or a ``.ckpt`` file.

    ``frontend`` overrides :data:`DEFAULT_FRONTEND` for a model built by name.
    """
    from speechconv.models.registry import MODELS, build_model, get_entry, list_models

    list_models()  # registers every model
    path = Path(spec)
    if spec in MODELS and not path.exists():
        entry = get_entry(spec)
        if entry.task == "image":
            model = build_model(spec).eval()
            return VizModel(model, "image", spec, input_shape=entry.input_shape)
        from speechconv.frontends import build_frontend

        front = build_frontend(dict(frontend or DEFAULT_FRONTEND))
        model = build_model({"name": spec, "in_features": front.n_features}).eval()
        labels = [f"class{i}" for i in range(getattr(model, "num_classes", 2))]
        return _audio(model, front, labels, min(1, len(labels) - 1), spec)
    if path.is_file() and path.suffix == ".ckpt":
        return _from_checkpoint(path)
    try:
        from speechconv.pretrained import load_pretrained
    except ImportError:  # pragma: no cover - the pretrained package ships with speechconv
        raise ConfigError(f"{spec}: not a registered model name or a .ckpt file") from None
    try:
        spotter = load_pretrained(spec)
    except ConfigError as err:
        known = ", ".join(sorted(MODELS))
        raise ConfigError(f"{err} (nor a registered model name: {known})") from None
    return _audio(spotter.model.eval(), spotter.frontend.eval(), list(spotter.labels), spotter.keyword_index,
                  str(spec))


def _audio(model: nn.Module, front: nn.Module, labels: list[str], keyword_index: int, name: str) -> VizModel:
    shape = (int(front.n_features), 100)
    return VizModel(model, "audio", name, front, labels, keyword_index, shape)


def _from_checkpoint(path: Path) -> VizModel:
    """A Lightning checkpoint of :mod:`speechconv.training` (audio: ``spotter.*``; image: ``model.*``)."""
    from speechconv.models.registry import build_model, get_entry
    from speechconv.pretrained import load_prefixed_state, load_pretrained, read_checkpoint

    hparams, state = read_checkpoint(path)
    if not isinstance(hparams.get("model"), dict):
        raise ConfigError(f"{path}: the checkpoint's hyper_parameters hold no 'model' config")
    if "frontend" in hparams:
        spotter = load_pretrained(path)
        return _audio(spotter.model.eval(), spotter.frontend.eval(), list(spotter.labels), spotter.keyword_index,
                      str(path))
    model = build_model(dict(hparams["model"]))
    load_prefixed_state(model, state, "model.", str(path))
    return VizModel(model.eval(), "image", str(path), input_shape=get_entry(model.config["name"]).input_shape)


# --- units --------------------------------------------------------------------------------------
def units_of(model: nn.Module) -> list[tuple[str, StreamingModule]]:
    """Top-level units in execution order, named as ``speechconv inspect`` names them."""
    from speechconv.summary import top_level_units

    return [(name.replace("layers.", ""), unit) for name, unit in top_level_units(model)]


def resolve_layer(model: nn.Module, layer: int | str) -> tuple[int, str, StreamingModule]:
    """(index, name, unit) of a unit given by index (negative counts from the end) or inspect name."""
    units = units_of(model)
    if not units:
        raise ConfigError(f"{type(model).__name__} has no units to look at")
    if isinstance(layer, str) and not _is_int(layer):
        for i, (name, unit) in enumerate(units):
            if name == layer:
                return i, name, unit
        raise ConfigError(f"no layer named {layer!r}; layers: {', '.join(n for n, _ in units)}")
    index = int(layer)
    if not -len(units) <= index < len(units):
        raise ConfigError(f"layer {index} out of range: the model has {len(units)} layers (0..{len(units) - 1})")
    index %= len(units)
    return index, units[index][0], units[index][1]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted unit has run."""


def unit_output(model: nn.Module, unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Output of ``unit`` when ``model`` runs on ``x``; later layers are not computed."""
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output)
        raise _Stop

    handle = unit.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise SpeechconvError(f"{type(unit).__name__} did not run in the model's forward pass")
    return captured[0]



# --- inputs -------------------------------------------------------------------------------------
def load_input(viz: VizModel, path: str | os.PathLike[str]) -> torch.Tensor:
    """One example (batch of 1) for ``viz``: the front-end features of an audio file (1, F, T) or an image
    file (1, C, H, W) of the model's input size."""
    if viz.task == "audio":
        from speechconv.audio import load_audio

        wave, _ = load_audio(path, viz.sample_rate)
        with torch.no_grad():
            features = viz.frontend(wave.unsqueeze(0))
        if features.shape[-1] == 0:
            raise ConfigError(f"{path}: too short for one feature frame ({wave.numel()} samples < n_fft={viz.n_fft})")
        return features
    return load_image(path, viz.input_shape)


def load_image(path: str | os.PathLike[str], shape: Sequence[int]) -> torch.Tensor:
    """An image file as (1, C, H, W) floats in [0, 1]; grey <-> RGB converted to ``shape``'s channels."""
    import matplotlib.image as mpimg

    try:
        image = np.asarray(mpimg.imread(os.fspath(path)), dtype=np.float32)
    except (OSError, ValueError, SyntaxError) as err:
        raise ConfigError(f"{path}: cannot read image ({err})") from None
    if image.max() > 1.0:  # 8-bit JPEG and friends
        image = image / 255.0
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3]  # drop alpha
    channels, height, width = shape
    if image.shape[:2] != (height, width):
        raise ConfigError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, the model needs {width}x{height}")
    if channels == 1 and image.shape[2] == 3:
        image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


# --- output -------------------------------------------------------------------------------------
def new_figure(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` with the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, out: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG (creating the folder) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=dpi, format="png", bbox_inches="tight")
    except OSError as err:
        raise ConfigError(f"{out}: cannot write PNG ({err.strerror or err})") from None
    finally:
        plt.close(fig)
    return out


def show_spectrogram(ax, features: np.ndarray, viz: VizModel, title: str = "input features") -> None:
    """Features (F, T) with time in seconds on x (frame ``k`` drawn over its hop) and bins on y."""
    if viz.task == "audio":
        hop_s = viz.hop_length / viz.sample_rate
        extent = (0.0, features.shape[-1] * hop_s, -0.5, features.shape[0] - 0.5)
        ax.imshow(features, origin="lower", aspect="auto", extent=extent, cmap="magma", interpolation="nearest")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("feature bin")
    else:
        ax.imshow(features, cmap="gray", interpolation="nearest")
    ax.set_title(title)
