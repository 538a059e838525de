"""Deployment: the streaming step of a keyword spotter as ONNX or TorchScript, and int8 quantisation.

``export_spotter(spotter, "hello.onnx", "onnx")`` writes the step ``(chunk, *state) -> (posteriors,
*new_state)`` with its description and initial state inside; the onnxruntime engine
(:mod:`speechconv.runtime.onnx_engine`, ``speechconv detect --engine onnx``) runs it without torch.
"""

from __future__ import annotations

import os

from speechconv.errors import ConfigError
from speechconv.export.state import StepSpec, prepare_step

FORMATS = ("onnx", "torchscript")


def export_spotter(
    spotter, path: str | os.PathLike[str], fmt: str = "onnx", chunk_samples: int | None = None,
    quantize: str | None = None, calibration_wave=None,
) -> StepSpec:
    """Export ``spotter``'s streaming step to ``path`` in ``fmt``; ``quantize="int8"`` (ONNX only)."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {FORMATS}, got {fmt!r}")
    if quantize not in (None, "int8", "int8-static"):
        raise ConfigError(f"quantize must be 'int8' (dynamic) or 'int8-static', got {quantize!r}")
    if fmt == "torchscript":
        if quantize:
            raise ConfigError("int8 quantisation is available for ONNX export only")
        from speechconv.export.torchscript import export_torchscript

        return export_torchscript(spotter, path, chunk_samples)
    from speechconv.export.onnx import export_onnx

    if not quantize:
        return export_onnx(spotter, path, chunk_samples)
    import tempfile

    from speechconv.export.quantize import quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.onnx")
        export_onnx(spotter, float_path, chunk_samples)
        mode = "static" if quantize == "int8-static" else "dynamic"
        return quantize_onnx(float_path, path, mode, calibration_wave)


__all__ = ["FORMATS", "StepSpec", "export_spotter", "prepare_step"]
