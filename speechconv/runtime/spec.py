"""What an exported streaming step is: its description (:class:`StepSpec`), state names and initial
state, stored in the model file's metadata. numpy only, so that runtimes need no torch.

An exported step takes ``chunk`` and the state tensors as inputs and returns ``posteriors`` and the
new state tensors, in the order of :attr:`StepSpec.state_names` (inputs ``state_in.<name>``, outputs
``state_out.<name>``). It starts from the initial state stored beside it: the state of a stream that
heard ``warmup_samples`` of digital silence. With ``dynamic_chunk`` the chunk may hold any positive
multiple of ``samples_per_output`` samples, else exactly ``chunk_samples``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from speechconv.errors import ConfigError
from speechconv.streaming.timing import stream_times

METADATA_KEY = "speechconv"
INITIAL_STATE_KEY = "speechconv.initial_state"
FORMAT_VERSION = 1
CHUNK_INPUT = "chunk"
POSTERIORS_OUTPUT = "posteriors"


def state_input_name(name: str) -> str:
    return f"state_in.{name}"


def state_output_name(name: str) -> str:
    return f"state_out.{name}"


@dataclass
class StepSpec:
    """What an exported streaming step computes, and how to drive it (all JSON-serialisable)."""

    chunk_samples: int
    sample_rate: int
    labels: list[str]
    keyword: str
    keyword_index: int
    frames_per_chunk: int
    output_frame_period: float
    first_output_time: float
    stream_start_time: float
    audio_end_lag: float
    warmup_samples: int
    lookahead: int
    frame_timing: dict[str, int]
    detector: dict[str, Any]
    state_names: list[str]
    state_shapes: list[list[int]]
    state_dtypes: list[str]
    quantization: str | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    dynamic_chunk: bool = False  # the chunk may be any positive multiple of samples_per_output

    @property
    def samples_per_output(self) -> int:
        """Samples per output frame: chunks are multiples of it."""
        return self.chunk_samples // self.frames_per_chunk

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "metadata") -> StepSpec:
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"{where}: not a speechconv streaming-step description ({err})") from None

    def output_times(self, start_frame: int, n: int) -> np.ndarray:
        """Seconds from the stream's first sample of the step outputs ``start_frame ..``: the one timing rule
        (:func:`speechconv.streaming.timing.stream_times`), so the times equal the PyTorch engine's bit for bit."""
        return stream_times(self.frame_timing, np.arange(start_frame, start_frame + n))


def encode_arrays(arrays: dict[str, np.ndarray]) -> str:
    """JSON of ``{name: {dtype, shape, data (base64 of little-endian bytes)}}``."""
    out = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        out[name] = {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            "data": base64.b64encode(little.tobytes()).decode("ascii"),
        }
    return json.dumps(out, sort_keys=True)


def decode_arrays(text: str, where: str = "initial state") -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`."""
    try:
        data = json.loads(text)
        return {
            name: np.frombuffer(base64.b64decode(entry["data"]), dtype=np.dtype(entry["dtype"]).newbyteorder("<"))
            .astype(entry["dtype"])
            .reshape(entry["shape"])
            for name, entry in data.items()
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: cannot decode the stored state tensors ({err})") from None
