"""Pretrained keyword spotters: a directory format, saving and loading.

A pretrained model is a directory holding

- ``config.yaml``: ``{"frontend": {...}, "model": {...}, "labels": [...], "keyword": ..., "detector": {...}}``
  (the front-end and model configs are the dicts that ``build_frontend`` / ``build_model`` take);
- ``model.safetensors``: the :class:`~speechconv.streaming.KeywordSpotter` state dict;
- ``README.md``: the model card (data, training, metrics, intended use);
- ``model.onnx`` (optional): the exported streaming step, for the onnxruntime engine (no PyTorch).

:func:`load_pretrained` takes such a directory, a bare name of one bundled in this package
(``speechconv/pretrained/<name>/``), or a Lightning ``.ckpt`` file whose hyper-parameters hold
``frontend``, ``model``, ``labels`` (and optionally ``detector``, ``keyword``) and whose state-dict
keys start with ``spotter.``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechconv.errors import ConfigError

if TYPE_CHECKING:
    import torch

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
ONNX_FILE = "model.onnx"
CARD_FILE = "README.md"
DEFAULT_MODEL = "hello"  # a whisper-head model (speechconv.runtime.whisper_engine): detect, listen, evaluate
SMALL_MODEL = "hello_small"  # the bundled KeywordSpotter (TC-ResNet8): what the PyTorch tools load by default
REQUIRED_KEYS = ("frontend", "model", "labels")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a missing file or a syntax error is one ConfigError line naming file, line and problem."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {yaml_problem(err)}") from None


def yaml_problem(err: Exception) -> str:
    """One line for a YAML error: where and what, without PyYAML's quoted source lines and carets."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"invalid YAML{where}: {problem}"


def bundled_path(name: str) -> Path:
    return PACKAGE_DIR / name


def list_bundled() -> list[str]:
    """Names of the pretrained models shipped in the package."""
    return sorted(p.name for p in PACKAGE_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def default_model_available() -> bool:
    return (bundled_path(DEFAULT_MODEL) / CONFIG_FILE).is_file()


def build_spotter(config: dict[str, Any], where: str = "config"):
    """Build an untrained :class:`~speechconv.streaming.KeywordSpotter` from a config dict."""
    from speechconv.detect.detector import Detector
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
        spotter = KeywordSpotter(frontend, model, list(labels), config.get("detector"), config.get("keyword"))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid config ({err})") from None
    try:  # the detector options are checked here, where the model's file can be named
        Detector.from_config(spotter.detector, spotter.output_period)
    except ConfigError as err:
        raise ConfigError(f"{where}: detector: {err}") from None
    return spotter


def ensemble_spotter(spotters: list, detector: dict[str, Any] | None = None):
    """One :class:`~speechconv.streaming.KeywordSpotter` whose posteriors are the mean of ``spotters``'
    (see :mod:`speechconv.models.ensemble`): their front-ends on one shared mel spectrogram, their models
    side by side, their weights copied in. They must have the same labels and keyword; the detector
    options are ``detector``, by default the first spotter's."""
    if not spotters:
        raise ConfigError("an ensemble needs at least one model")
    first = spotters[0]
    for i, other in enumerate(spotters[1:], start=1):
        if list(other.labels) != list(first.labels) or other.keyword != first.keyword:
            raise ConfigError(f"ensemble member {i} has labels {other.labels} (keyword {other.keyword!r}), "
                              f"member 0 {first.labels} ({first.keyword!r}); they must agree")
    config = {
        "frontend": {"name": "ensemble", "members": [s.frontend.config for s in spotters]},
        "model": {"name": "ensemble", "members": [dict(s.model.config) for s in spotters]},
        "labels": list(first.labels),
        "keyword": first.keyword,
        "detector": dict(first.detector if detector is None else detector),
    }
    spotter = build_spotter(config, "ensemble")
    state = spotter.state_dict()
    for i, member in enumerate(spotters):
        for part in ("frontend", "model"):
            for key, value in getattr(member, part).state_dict().items():
                state[f"{part}.members.{i}.{key}"] = value
    _load_state(spotter, state, "ensemble")
    return spotter.to(next(first.parameters()).device).train(first.training)


def save_pretrained(spotter, directory: str | os.PathLike[str], card_text: str | None = None,
                    onnx: bool = False) -> Path:
    """Write ``spotter`` as a pretrained-model directory (created if needed); returns its path.

    With ``onnx``, also its exported streaming step ``model.onnx`` (batch norms folded), which the
    onnxruntime engine runs without PyTorch (needs the ``onnx`` package)."""
    import yaml
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
    if onnx:
        from speechconv.export import export_spotter

        export_spotter(spotter, directory / ONNX_FILE, "onnx")  # batch norms folded in the export's copy
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


def load_pretrained(name_or_path: str | os.PathLike[str] = SMALL_MODEL, device: str | torch.device = "cpu",
                    fold_bn: bool = False):
    """Load a :class:`~speechconv.streaming.KeywordSpotter` (eval mode) from a directory, name or ``.ckpt``.

    The layers are those its config describes, so ``save_pretrained(load_pretrained(x))`` round-trips.
    ``fold_bn=True`` folds batch norms into their convolutions (the same numbers with fewer operations;
    the config then no longer describes the weights): what the inference engine and export do to a copy.
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
    from safetensors.torch import load

    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise ConfigError(f"{path}: not a pretrained model directory ({needed.name} is missing)")
    config = read_yaml(config_path)
    frontend = config.get("frontend") if isinstance(config, dict) else None
    if isinstance(frontend, dict) and frontend.get("name") == "whisper":
        raise ConfigError(f"{path}: a keyword head on Whisper's encoder, not a KeywordSpotter: detect, listen and "
                          f"evaluate run it; for the PyTorch tools use a KeywordSpotter such as '{SMALL_MODEL}'")
    spotter = build_spotter(config, str(config_path))
    # Read the bytes here: safetensors reports an unreadable file as "No such file or directory".
    try:
        data = weights_path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{weights_path}: cannot read weights ({err.strerror or err})") from None
    try:
        state = load(data)
    except (SafetensorError, ValueError, OSError) as err:
        raise ConfigError(f"{weights_path}: not a safetensors file ({_first_line(str(err))})") from None
    _load_state(spotter, state, str(weights_path))
    return spotter


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(hyper_parameters, state_dict) of a Lightning checkpoint, read weights-only (nothing is unpickled).

    Every way the file can be wrong is one ConfigError line naming the file.
    """
    import torch

    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ConfigError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses them
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ConfigError(f"{path}: {_checkpoint_problem(err)}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    hparams, state = checkpoint.get("hyper_parameters") or {}, checkpoint["state_dict"]
    if not isinstance(hparams, dict):
        raise ConfigError(f"{path}: not a Lightning checkpoint ('hyper_parameters' is a {type(hparams).__name__}, "
                          "expected a mapping)")
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise ConfigError(f"{path}: not a Lightning checkpoint ('state_dict' is not a mapping of names to tensors)")
    return dict(hparams), state


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "").rstrip(".")


def _checkpoint_problem(err: Exception) -> str:
    """One line for a checkpoint that torch.load refuses or cannot read."""
    text = str(err)
    if "Weights only load failed" in text:
        # torch's message is a page of advice; the line that names what was refused is the useful one
        skip = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(skip)]
        detail = lines[0].rstrip(".") if lines else type(err).__name__
        return f"cannot read checkpoint: torch's weights-only loader rejected it ({detail})"
    first = re.split(r"(?<=\.)\s", _first_line(text), maxsplit=1)[0].rstrip(".")
    return f"cannot read checkpoint ({first or type(err).__name__}; truncated or not a checkpoint?)"


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
    "read_yaml",
    "CARD_FILE",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "SMALL_MODEL",
    "WEIGHTS_FILE",
    "build_spotter",
    "default_model_available",
    "ensemble_spotter",
    "list_bundled",
    "load_pretrained",
    "resolve",
    "save_pretrained",
]
