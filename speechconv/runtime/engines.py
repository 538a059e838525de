"""Choosing and loading an engine: ``auto`` is PyTorch when it is installed, else onnxruntime."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from speechconv.errors import ConfigError
from speechconv.pretrained import ONNX_FILE

ENGINES = ("auto", "torch", "onnx")
TRAIN_EXTRA = 'pip install "speechconv[train]"'


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def resolve_engine(engine: str | None) -> str:
    """``torch`` or ``onnx`` for ``engine`` (None or ``auto``: torch when installed)."""
    engine = engine or "auto"
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        return "torch" if torch_available() else "onnx"
    if engine == "torch" and not torch_available():
        raise ConfigError(f"--engine torch needs PyTorch; {TRAIN_EXTRA}, or use --engine onnx")
    return engine


def onnx_model_path(name_or_path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(model.onnx, its model directory or None)`` for a bundled name, a model directory or an .onnx file."""
    from speechconv.pretrained import resolve

    text = os.fspath(name_or_path)
    if text.endswith(".onnx"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"{text}: no such ONNX file")
        return path, None
    where = resolve(text)
    if where.is_file():
        raise ConfigError(f"{where}: a Lightning checkpoint needs the PyTorch engine ({TRAIN_EXTRA}); or export "
                          f"it with `speechconv export --model {where} --out model.onnx` and pass that")
    onnx_file = where / ONNX_FILE
    if not onnx_file.is_file():
        raise ConfigError(f"{where}: no {ONNX_FILE} for the onnxruntime engine; write it with `speechconv export "
                          f"--model {where} --out {onnx_file}` (needs {TRAIN_EXTRA})")
    return onnx_file, where


def whisper_model_dir(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The directory of a whisper-head model that ``name_or_path`` names, else None."""
    from speechconv.pretrained import resolve
    from speechconv.runtime.whisper_engine import is_whisper_model

    text = os.fspath(name_or_path)
    if text.endswith((".onnx", ".ckpt")):
        return None
    where = resolve(text)
    return where if where.is_dir() and is_whisper_model(where) else None


def load_model(name_or_path: str | os.PathLike[str], engine: str | None = None, threads: int | None = None,
               live: bool = False):
    """A model for detection on ``engine`` (see :mod:`speechconv.runtime`).

    The onnxruntime engine reads ``model.onnx`` of a model directory (or a bundled model); the
    directory's ``config.yaml`` decides the keyword and detector options, as it does for PyTorch.
    A whisper-head model directory always runs on the whisper engine (CTranslate2 and onnxruntime),
    whatever ``engine`` says; ``live`` encodes short pieces for low latency instead of 30 s windows.
    """
    whisper_dir = whisper_model_dir(name_or_path)
    if whisper_dir is not None:
        from speechconv.runtime.whisper_engine import WhisperModel

        return WhisperModel(whisper_dir, threads, mode="live" if live else "window")
    if resolve_engine(engine) == "torch":
        from speechconv.pretrained import load_pretrained
        from speechconv.runtime.torch_engine import TorchModel

        return TorchModel(load_pretrained(name_or_path))
    from speechconv.pretrained import CONFIG_FILE, read_yaml
    from speechconv.runtime.onnx_engine import OnnxModel

    onnx_file, folder = onnx_model_path(name_or_path)
    config = read_yaml(folder / CONFIG_FILE) if folder is not None and (folder / CONFIG_FILE).is_file() else {}
    model = OnnxModel(onnx_file, threads, detector=config.get("detector"), keyword=config.get("keyword"))
    if config.get("labels") is not None and list(config["labels"]) != model.labels:
        raise ConfigError(f"{onnx_file}: labels {model.labels} differ from {folder / CONFIG_FILE}'s "
                          f"{list(config['labels'])}; export it again")
    return model
