"""ONNX export of a spotter's streaming step (run it with :mod:`speechconv.runtime.onnx_engine`).

The graph has inputs ``chunk`` ``(1, samples)`` float32 (a dynamic axis: any multiple of the output
period, unless exported with ``dynamic=False``) and ``state_in.<name>``, outputs ``posteriors``
``(1, C, frames)`` and ``state_out.<name>``; its ``metadata_props`` hold the
:class:`~speechconv.runtime.spec.StepSpec` JSON (``"speechconv"``) and the initial state
(``"speechconv.initial_state"``). The STFT is framing plus real matmuls, so the legacy
(TorchScript-based) exporter suffices and no ``onnxscript`` is needed.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from speechconv.export.state import (
    CHUNK_INPUT,
    INITIAL_STATE_KEY,
    METADATA_KEY,
    POSTERIORS_OUTPUT,
    StepSpec,
    flatten_state,
    initial_state_json,
    prepare_step,
    state_input_name,
    state_output_name,
)
from speechconv.runtime.onnx_engine import OnnxStep, read_metadata  # noqa: F401  (their old home)

OPSET = 17


def export_onnx(
    spotter, path: str | os.PathLike[str], chunk_samples: int | None = None, opset: int = OPSET,
    dynamic: bool = True,
) -> StepSpec:
    """Write the streaming step of ``spotter`` to ``path`` (ONNX); returns its description.

    With ``dynamic`` (the default) the chunk axis is dynamic: the step runs chunks of any positive
    multiple of the output period (``chunk_samples`` is then only the size it was traced with), so one
    file serves live input (small chunks) and files (large blocks, where per-call costs vanish).
    """
    import onnx

    step, spec, state = prepare_step(spotter, chunk_samples)
    spec.dynamic_chunk = bool(dynamic)
    chunk = torch.zeros(1, spec.chunk_samples)
    inputs = (chunk, *flatten_state(state, spec.state_names))
    input_names = [CHUNK_INPUT] + [state_input_name(n) for n in spec.state_names]
    output_names = [POSTERIORS_OUTPUT] + [state_output_name(n) for n in spec.state_names]
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: shapes are fixed on purpose
        torch.onnx.export(
            step, inputs, str(path), input_names=input_names, output_names=output_names,
            opset_version=opset, dynamo=False, do_constant_folding=True,
            dynamic_axes={CHUNK_INPUT: {1: "samples"}, POSTERIORS_OUTPUT: {2: "frames"}} if dynamic else None,
        )
    model = onnx.load(str(path))
    write_metadata(model, spec, initial_state_json(state))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return spec


def write_metadata(model, spec: StepSpec, initial_state: str) -> None:
    """Set (replace) the speechconv entries of an ``onnx.ModelProto``'s ``metadata_props``."""
    keep = [p for p in model.metadata_props if p.key not in (METADATA_KEY, INITIAL_STATE_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in ((METADATA_KEY, spec.to_json()), (INITIAL_STATE_KEY, initial_state)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
