"""Engines that run a keyword spotter's streaming step for detection.

- ``torch``: the :class:`~speechconv.streaming.KeywordSpotter` itself (needs PyTorch; reads model
  directories with ``model.safetensors`` and Lightning checkpoints);
- ``onnx``: the exported step (``model.onnx``: front-end, model and state in one graph) on onnxruntime,
  with numpy only; what the core install (``pip install speechconv``) runs.

Both give a model object with ``keyword``, ``labels``, ``sample_rate``, ``detector``, ``output_period``
and ``open_stream()``, whose ``feed(samples) -> (times, keyword scores)`` takes audio of any length and
gives the same frames and times (scores within 1e-4). :func:`load_model` picks and loads one.
"""

from __future__ import annotations

from speechconv.runtime.engines import ENGINES, load_model, resolve_engine, torch_available

__all__ = ["ENGINES", "load_model", "resolve_engine", "torch_available"]
