"""int8 post-training quantisation of an exported ONNX streaming step (onnxruntime.quantization).

``mode="dynamic"`` stores Conv/MatMul/Gemm weights as int8 and quantises activations on the fly
(ConvInteger / MatMulInteger): no calibration data. ``mode="static"`` also fixes activation scales,
calibrated on a stream run through the float step, and writes a QDQ graph (QLinearConv kernels).
The front-end (STFT and mel matmuls) is never quantised, nor is the softmax.
The metadata is copied, with ``quantization`` set, so the result is a drop-in replacement.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from speechconv.errors import ConfigError
from speechconv.export.state import CHUNK_INPUT, INITIAL_STATE_KEY, METADATA_KEY, StepSpec, state_input_name

MODES = ("dynamic", "static")
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
MODEL_SCOPE = "/model/"  # the exporter names nodes by module path; the spotter's model is ``model``


class _NoPreprocessingAdvice(logging.Filter):
    """onnxruntime advises, on the root logger, to run its shape-inference pre-processing first: it only
    helps graphs with unknown shapes, and every shape of an exported step is fixed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    quiet = _NoPreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def float_nodes(model) -> list[str]:
    """Nodes that stay in float: the front-end's (framing, DFT and mel matmuls, log or PCEN, normalisation)
    and the softmax, i.e. every node outside the model's scope (names not under ``/model/``)."""
    return [node.name for node in model.graph.node if not node.name.startswith(MODEL_SCOPE)]


def calibration_feeds(path: str, wave: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """Inputs (chunk and state) of every step of the float model over ``wave``."""
    from speechconv.export.onnx import OnnxStep

    step = OnnxStep(path)
    size = step.spec.chunk_samples
    for start in range(0, len(wave) - size + 1, size):
        chunk = wave[start:start + size].astype(np.float32)[None]
        feeds = {CHUNK_INPUT: chunk}
        feeds.update({state_input_name(n): s for n, s in zip(step.spec.state_names, step.state)})
        yield feeds
        step.feed(chunk)


def quantize_onnx(
    float_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    mode: str = "dynamic",
    calibration_wave: np.ndarray | None = None,
) -> StepSpec:
    """Write an int8 version of the exported step ``float_path`` to ``out_path``; returns its spec.

    ``calibration_wave`` (1-D float samples at the model's rate) is needed for ``mode="static"``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_dynamic, quantize_static

    if mode not in MODES:
        raise ConfigError(f"quantisation mode must be one of {MODES}, got {mode!r}")
    float_path, out_path = Path(float_path), Path(out_path)
    model = onnx.load(str(float_path))
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ConfigError(f"{float_path}: not a speechconv streaming step (no '{METADATA_KEY}' metadata)")
    spec = StepSpec.from_json(props[METADATA_KEY], str(float_path))
    exclude = float_nodes(model)
    with tempfile.TemporaryDirectory() as tmp, _quiet_onnxruntime():
        raw = Path(tmp) / "quantized.onnx"
        if mode == "dynamic":
            quantize_dynamic(str(float_path), str(raw), weight_type=QuantType.QInt8,
                             op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=exclude)
        else:
            if calibration_wave is None or len(calibration_wave) < spec.chunk_samples:
                raise ConfigError("static quantisation needs a calibration wave of at least one chunk")

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.feeds = calibration_feeds(str(float_path), np.asarray(calibration_wave))

                def get_next(self):
                    return next(self.feeds, None)

            quantize_static(str(float_path), str(raw), Reader(), op_types_to_quantize=QUANTIZED_OPS,
                            nodes_to_exclude=exclude, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True)
        quantized = onnx.load(str(raw))
    spec.quantization = f"int8-{mode}"
    from speechconv.export.onnx import write_metadata

    write_metadata(quantized, spec, props[INITIAL_STATE_KEY])
    onnx.save(quantized, str(out_path))
    return spec
