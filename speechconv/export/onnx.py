"""ONNX export of a spotter's streaming step, and a numpy/onnxruntime runner for it.

The graph has inputs ``chunk`` ``(1, chunk_samples)`` float32 and ``state_in.<name>``, outputs
``posteriors`` ``(1, C, frames_per_chunk)`` and ``state_out.<name>``; its ``metadata_props`` hold the
:class:`~speechconv.export.state.StepSpec` JSON (``"speechconv"``) and the initial state
(``"speechconv.initial_state"``). The STFT is a float64 matmul, so the legacy (TorchScript-based)
exporter suffices and no ``onnxscript`` is needed.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from speechconv.errors import ConfigError
from speechconv.export.state import (
    CHUNK_INPUT,
    INITIAL_STATE_KEY,
    METADATA_KEY,
    POSTERIORS_OUTPUT,
    StepSpec,
    decode_arrays,
    flatten_state,
    initial_state_json,
    prepare_step,
    state_input_name,
    state_output_name,
)

OPSET = 17


def export_onnx(
    spotter, path: str | os.PathLike[str], chunk_samples: int | None = None, opset: int = OPSET
) -> StepSpec:
    """Write the streaming step of ``spotter`` to ``path`` (ONNX); returns its description."""
    import onnx

    step, spec, state = prepare_step(spotter, chunk_samples)
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


def read_metadata(props: dict[str, str], where: str) -> tuple[StepSpec, dict[str, np.ndarray]]:
    if METADATA_KEY not in props or INITIAL_STATE_KEY not in props:
        raise ConfigError(f"{where}: not a speechconv streaming step (no '{METADATA_KEY}' metadata)")
    return StepSpec.from_json(props[METADATA_KEY], where), decode_arrays(props[INITIAL_STATE_KEY], where)


class OnnxStep:
    """Runs an exported step with onnxruntime: ``feed(chunk) -> posteriors (C, n)``, state kept inside."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ConfigError(f"{path}: cannot load ONNX model ({err})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.spec, self.initial_state = read_metadata(props, str(path))
        self.reset()

    def reset(self) -> None:
        self.state = [self.initial_state[n] for n in self.spec.state_names]
        self.frames_done = 0

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        """Posteriors ``(C, frames_per_chunk)`` of one chunk of exactly ``chunk_samples`` samples."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(1, -1)
        if chunk.shape[1] != self.spec.chunk_samples:
            raise ValueError(f"chunks must have {self.spec.chunk_samples} samples, got {chunk.shape[1]}")
        feeds = {CHUNK_INPUT: chunk}
        feeds.update({state_input_name(n): s for n, s in zip(self.spec.state_names, self.state)})
        outputs = self.session.run(None, feeds)
        self.state = outputs[1:]
        self.frames_done += outputs[0].shape[-1]
        return outputs[0][0]
