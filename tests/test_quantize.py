"""int8 quantisation of an exported step: int8 kernels, float front-end, metadata kept, close posteriors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechconv.export import export_spotter
from speechconv.export.onnx import OnnxStep
from speechconv.export.quantize import float_nodes, quantize_onnx
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.streaming import KeywordSpotter

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SR, CHUNK = 16000, 1600


@pytest.fixture(scope="module")
def float_step(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_model({"name": "tdnn", "num_classes": 2})
    spotter = KeywordSpotter(build_frontend({"name": "logmel", "n_mels": net.in_features}), net,
                             ["_unknown_", "hello"]).eval()
    path = tmp_path_factory.mktemp("q") / "float.onnx"
    export_spotter(spotter, path, "onnx", CHUNK)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(4 * SR)).astype(np.float32)
    return spotter, path, wave


def run(path, wave) -> np.ndarray:
    step = OnnxStep(path, threads=1)
    return np.concatenate([step.feed(wave[s:s + CHUNK]) for s in range(0, len(wave), CHUNK)], axis=-1)


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("mode, int8_ops", [("dynamic", {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}),
                                            ("static", {"QuantizeLinear", "DequantizeLinear"})])
def test_quantized_step_is_int8_and_close(float_step, tmp_path, mode, int8_ops):
    _, path, wave = float_step
    out = tmp_path / f"{mode}.onnx"
    spec = quantize_onnx(path, out, mode, calibration_wave=wave[: 2 * SR])
    assert spec.quantization == f"int8-{mode}"
    assert op_types(out) & int8_ops
    model = onnx.load(str(out))
    int8_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert int8_weights  # weights stored as int8
    reference, got = run(path, wave), run(out, wave)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() < 0.05  # int8 error on a 2-class softmax
    assert np.allclose(got.sum(axis=0), 1.0, atol=1e-5)
    # the front-end (float64 DFT and mel matmuls) is left in float
    double_matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.name in float_nodes(model)]
    assert len(double_matmuls) == 3
    # metadata (state names, initial state) carried over: the runner starts from the same state
    np.testing.assert_equal(OnnxStep(out).initial_state, OnnxStep(path).initial_state)


def test_front_end_nodes_are_excluded(float_step):
    _, path, _ = float_step
    model = onnx.load(str(path))
    excluded = set(float_nodes(model))
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    assert len([n for n in matmuls if n.name in excluded]) == 3  # cos, sin, mel
    assert any(n.op_type == "Conv" and n.name not in excluded for n in model.graph.node)


def test_export_quantize_option(float_step, tmp_path):
    spotter, path, wave = float_step
    out = tmp_path / "q.onnx"
    spec = export_spotter(spotter, out, "onnx", CHUNK, quantize="int8")
    assert spec.quantization == "int8-dynamic"
    assert np.abs(run(out, wave) - run(path, wave)).max() < 0.05
