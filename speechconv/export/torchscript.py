"""TorchScript export of a spotter's streaming step (traced), with its description in ``_extra_files``.

``forward(chunk (1, chunk_samples), *state) -> (posteriors (1, C, n), *new_state)``; the state order,
shapes and the initial state are in the extra files ``speechconv.json`` and
``speechconv.initial_state.json`` (the same JSON as the ONNX metadata).
"""

from __future__ import annotations

import os
import warnings

import torch

from speechconv.errors import ConfigError
from speechconv.export.state import (
    INITIAL_STATE_KEY,
    METADATA_KEY,
    StepSpec,
    decode_arrays,
    flatten_state,
    initial_state_json,
    prepare_step,
)

SPEC_FILE = f"{METADATA_KEY}.json"
STATE_FILE = f"{INITIAL_STATE_KEY}.json"


def export_torchscript(spotter, path: str | os.PathLike[str], chunk_samples: int | None = None) -> StepSpec:
    """Trace the streaming step of ``spotter`` and save it to ``path``; returns its description."""
    step, spec, state = prepare_step(spotter, chunk_samples)
    inputs = (torch.zeros(1, spec.chunk_samples), *flatten_state(state, spec.state_names))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: shapes are fixed on purpose
        traced = torch.jit.trace(step, inputs, check_trace=False)
    extra = {SPEC_FILE: spec.to_json(), STATE_FILE: initial_state_json(state)}
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export; it is still the format here
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.save.* is deprecated", category=FutureWarning)
        torch.jit.save(traced, str(path), _extra_files=extra)
    return spec


def load_torchscript(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, StepSpec, dict[str, torch.Tensor]]:
    """Load an exported step: ``(module, spec, initial state tensors)``."""
    extra = {SPEC_FILE: "", STATE_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot load TorchScript module ({str(err).splitlines()[0]})") from None
    if not extra[SPEC_FILE]:
        raise ConfigError(f"{path}: not a speechconv streaming step (no {SPEC_FILE} extra file)")
    spec = StepSpec.from_json(extra[SPEC_FILE], str(path))
    state = {k: torch.from_numpy(v.copy()) for k, v in decode_arrays(extra[STATE_FILE], str(path)).items()}
    return module, spec, state
