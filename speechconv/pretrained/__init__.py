"""Pretrained keyword spotters: a directory format, saving and loading.

A pretrained model is a directory holding

- ``config.yaml``: ``{"frontend": {...}, "model": {...}, "labels": [...], "keyword": ..., "detector": {...}}``
  (the front-end and model configs are the dicts that ``build_frontend`` / ``build_model`` take);
- ``model.safetensors``: the :class:`~speechconv.streaming.KeywordSpotter` state dict;
- ``README.md``: the model card (data, training, metrics, intended use).

:func:`load_pretrained` takes such a directory, a bare name of one bundled in this package
(``speechconv/pretrained/<name>/``), or a Lightning ``.ckpt`` file whose hyper-parameters hold
``frontend``, ``model``, ``labels`` (and optionally ``detector``, ``keyword``) and whose state-dict
keys start with ``spotter.``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml

from speechconv.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
DEFAULT_MODEL = "hello"
REQUIRED_KEYS = ("frontend", "model", "labels")


def bundled_path(name: str) -> Path:
    return PACKAGE_DIR / name


def list_bundled() -> list[str]:
    """Names of the pretrained models shipped in the package."""
    return sorted(p.name for p in PACKAGE_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def default_model_available() -> bool:
    return (bundled_path(DEFAULT_MODEL) / CONFIG_FILE).is_file()


def build_spotter(config: dict[str, Any], where: str = "config"):
    """Build an untrained :class:`~speechconv.streaming.KeywordSpotter` from a config dict."""
    from speechconv.frontends import build_frontend
    from speechconv.models import build_model
    from speechconv.streaming import KeywordSpotter

    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {list(REQUIRED_KEYS)}, got {type(config).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    labels = config["labels"]
    if not isinstance(labels, (list, tuple)) or not labels:
        raise ConfigError(f"{where}: 'labels' must be a non-empty list, got {labels!r}")
    try:
        frontend = build_frontend(dict(config["frontend"]))
        # a training config may leave the model's input and output sizes to the front-end and labels
        model_config = {"in_features": frontend.n_features, "num_classes": len(labels), **dict(config["model"])}
        model = build_model(model_config)
        model.config = dict(config["model"])  # record the config as given
        return KeywordSpotter(frontend, model, list(labels), config.get("detector"), config.get("keyword"))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid config ({err})") from None


def save_pretrained(spotter, directory: str | os.PathLike[str], card_text: str | None = None) -> Path:
    """Write ``spotter`` as a pretrained-model directory (created if needed); returns its path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = spotter.config
    state = {k: v.detach().cpu().clone().contiguous() for k, v in spotter.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "library": "speechconv"})
    with open(directory / CONFIG_FILE, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    if card_text is None:
        card_text = default_card(spotter)
    (directory / CARD_FILE).write_text(card_text)
    return directory


def default_card(spotter) -> str:
    """A minimal model card stating what the model is (for models saved without one)."""
    model = spotter.model
    return (
        f"# Keyword spotter: {spotter.keyword}\n\n"
        f"- model: `{model.config.get('name', type(model).__name__)}`, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters\n"
        f"- front-end: `{spotter.frontend.config.get('name')}` at {spotter.sample_rate} Hz\n"
        f"- labels: {', '.join(spotter.labels)}\n"
        f"- detector defaults: {spotter.detector}\n\n"
        "No training or evaluation details were recorded for this model.\n"
    )


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The directory or checkpoint file that ``name_or_path`` refers to."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.exists():
        return path
    if os.sep not in text and "/" not in text and not text.endswith(".ckpt"):
        bundled = bundled_path(text)
        if (bundled / CONFIG_FILE).is_file():
            return bundled
        available = ", ".join(list_bundled()) or "none"
        raise ConfigError(f"{text}: no such model directory or file, and no bundled model of that name "
                          f"(bundled: {available})")
    raise ConfigError(f"{text}: no such model directory or file")


def load_pretrained(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL, device: str | torch.device = "cpu",
                    fold_bn: bool = True):
    """Load a :class:`~speechconv.streaming.KeywordSpotter` (eval mode) from a directory, name or ``.ckpt``.

    With ``fold_bn`` (the default, for inference) batch norms are folded into their convolutions: the same
    numbers with fewer operations. Pass ``fold_bn=False`` to get the trained layers as they are.
    """
    from speechconv.blocks.fuse import fold_batch_norm

    path = resolve(name_or_path)
    if path.is_file():
        if path.suffix != ".ckpt":
            raise ConfigError(f"{path}: expected a model directory or a Lightning .ckpt file")
        spotter = _load_checkpoint(path)
    else:
        spotter = _load_directory(path)
    spotter = spotter.to(device).eval()
    return fold_batch_norm(spotter) if fold_bn else spotter


def _load_directory(path: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise ConfigError(f"{path}: not a pretrained model directory ({needed.name} is missing)")
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_path}: not valid YAML ({err})") from None
    spotter = build_spotter(config, str(config_path))
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise ConfigError(f"{weights_path}: cannot read weights ({err})") from None
    _load_state(spotter, state, str(weights_path))
    return spotter


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(hyper_parameters, state_dict) of a Lightning checkpoint, read weights-only (nothing is unpickled)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ConfigError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return dict(checkpoint.get("hyper_parameters") or {}), checkpoint["state_dict"]


def load_prefixed_state(module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str, where: str) -> None:
    """Load the entries of ``state`` under ``prefix`` (e.g. ``"spotter."``) into ``module``, strictly."""
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ConfigError(f"{where}: no '{prefix}*' weights in the checkpoint's state_dict")
    _load_state(module, weights, where)


def _load_checkpoint(path: Path):
    hparams, state = read_checkpoint(path)
    config = {key: hparams[key] for key in ("frontend", "model", "labels", "detector", "keyword") if key in hparams}
    spotter = build_spotter(config, f"{path} (hyper_parameters)")
    load_prefixed_state(spotter, state, "spotter.", str(path))
    return spotter


def _load_state(spotter, state: dict[str, torch.Tensor], where: str) -> None:
    try:
        spotter.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) or first[0]
        raise ConfigError(f"{where}: weights do not match the config ({detail})") from None


__all__ = [
    "load_prefixed_state",
    "read_checkpoint",
    "CARD_FILE",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "WEIGHTS_FILE",
    "build_spotter",
    "default_model_available",
    "list_bundled",
    "load_pretrained",
    "resolve",
    "save_pretrained",
]
