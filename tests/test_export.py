"""Exported streaming steps (ONNX, TorchScript) equal PyTorch streaming; detect prints the same on both engines."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechconv.detect.detector import Detector
from speechconv.errors import ConfigError
from speechconv.export import export_spotter
from speechconv.export.onnx import OnnxStep
from speechconv.export.state import prepare_step, state_input_name, state_output_name
from speechconv.export.torchscript import load_torchscript
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.streaming import KeywordSpotter

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SR = 16000
CHUNK = 1600
TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]
LABELS = ["_unknown_", "hello"]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_spotter(model: str = "tdnn", frontend: str = "pcen", detector: dict | None = None) -> KeywordSpotter:
    torch.manual_seed(0)
    net = build_model({"name": model, "num_classes": len(LABELS)})
    return KeywordSpotter(build_frontend({"name": frontend, "n_mels": net.in_features}), net, LABELS, detector).eval()


def burst_wave(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with tone bursts every second from 0.5 s on (so the scores move)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    bursts = ((t % 1.0) > 0.5) & ((t % 1.0) < 0.8) & (t > 0.5)
    return (0.01 * rng.standard_normal(n) + 0.4 * bursts * np.sin(2 * np.pi * 523 * t)).astype(np.float32)


@torch.no_grad()
def torch_stream(spotter: KeywordSpotter, wave: np.ndarray, chunk: int) -> np.ndarray:
    state = spotter.init_state(1, chunk)
    out = []
    for start in range(0, len(wave) - chunk + 1, chunk):
        posteriors, state = spotter.stream(torch.from_numpy(wave[start:start + chunk])[None], state)
        out.append(posteriors[0].numpy())
    return np.concatenate(out, axis=-1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)  # module fixtures run before the autouse one_thread fixture
    spotter = make_spotter()
    folder = tmp_path_factory.mktemp("export")
    onnx_path, ts_path = folder / "step.onnx", folder / "step.pt"
    spec = export_spotter(spotter, onnx_path, "onnx", CHUNK)
    export_spotter(spotter, ts_path, "torchscript", CHUNK)
    wave = burst_wave(20.0)
    return spotter, spec, onnx_path, ts_path, wave, torch_stream(spotter, wave, CHUNK)


def test_onnx_parity_over_20_seconds(exported):
    _, spec, onnx_path, _, wave, reference = exported
    step = OnnxStep(onnx_path, threads=1)
    got = np.concatenate([step.feed(wave[s:s + CHUNK]) for s in range(0, len(wave), CHUNK)], axis=-1)
    assert got.shape == reference.shape == (2, 2000)
    assert np.abs(got - reference).max() <= TOL


def test_onnx_dynamic_chunks_of_any_period_multiple(exported):
    """One exported file runs chunks of any multiple of the output period, mixed in one stream."""
    spotter, spec, onnx_path, _, wave, reference = exported
    period = spec.samples_per_output
    assert spec.dynamic_chunk and period == spotter.samples_per_output
    step = OnnxStep(onnx_path, threads=1)
    sizes, start, got = [1, 3, 40, 7, 2, 160], 0, []
    while start < len(wave):
        size = min(sizes[len(got) % len(sizes)] * period, len(wave) - start)
        got.append(step.feed(wave[start:start + size]))
        start += size
    got = np.concatenate(got, axis=-1)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= TOL
    with pytest.raises(ValueError, match=f"multiple of {period}"):
        step.feed(wave[: period + 1])


def test_onnx_fixed_chunk_export(tmp_path):
    spotter = make_spotter()
    from speechconv.export.onnx import export_onnx

    spec = export_onnx(spotter, tmp_path / "fixed.onnx", CHUNK, dynamic=False)
    model = onnx.load(str(tmp_path / "fixed.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, CHUNK]
    step = OnnxStep(tmp_path / "fixed.onnx", threads=1)
    assert not spec.dynamic_chunk and not step.spec.dynamic_chunk
    with pytest.raises(ValueError, match=f"must have {CHUNK} samples"):
        step.feed(np.zeros(2 * CHUNK, np.float32))


def test_torchscript_parity_over_20_seconds(exported):
    _, _, _, ts_path, wave, reference = exported
    module, spec, state = load_torchscript(ts_path)
    tensors = [state[n] for n in spec.state_names]
    got = []
    with torch.no_grad():
        for s in range(0, len(wave), CHUNK):
            posteriors, *tensors = module(torch.from_numpy(wave[s:s + CHUNK])[None], *tensors)
            got.append(posteriors[0].numpy())
    assert np.abs(np.concatenate(got, axis=-1) - reference).max() <= TOL


def test_metadata_names_shapes_and_initial_state(exported):
    spotter, spec, onnx_path, _, _, _ = exported
    model = onnx.load(str(onnx_path))
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    assert inputs == ["chunk"] + [state_input_name(n) for n in spec.state_names]
    assert outputs == ["posteriors"] + [state_output_name(n) for n in spec.state_names]
    shapes = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert shapes["chunk"] == [1, "samples"]  # dynamic: any multiple of the output period
    state = spotter.init_state(1, CHUNK)
    step = OnnxStep(onnx_path)
    for name, shape in zip(spec.state_names, spec.state_shapes):
        assert shapes[state_input_name(name)] == shape == list(state[name].shape)
        np.testing.assert_array_equal(step.initial_state[name], state[name].numpy())
    assert spec.labels == LABELS and spec.keyword_index == 1 and spec.chunk_samples == CHUNK
    assert spec.frames_per_chunk == CHUNK // spotter.samples_per_output
    assert spec.output_frame_period == pytest.approx(spotter.output_period)
    assert spec.lookahead == spotter.model.lookahead
    # timing: the first output after the warm-up describes the audio shifted back by the warm-up
    warm_frames = spotter.output_frames(spec.warmup_samples)
    assert spec.first_output_time == pytest.approx(
        spotter.output_times(warm_frames, 1)[0] - spec.warmup_samples / SR)


def test_strided_model_with_constant_skip_counters(tmp_path):
    """tc_resnet's strided 1x1 shortcuts keep skip counters: constant in the steady state, baked in."""
    spotter = make_spotter("tc_resnet", "logmel")
    chunk = spotter.samples_per_output * 2
    _, spec, _ = prepare_step(spotter, chunk)
    assert not any(name.endswith("_skip") for name in spec.state_names)
    export_spotter(spotter, tmp_path / "s.onnx", "onnx", chunk)
    wave = burst_wave(4.0, seed=3)
    reference = torch_stream(spotter, wave, chunk)
    step = OnnxStep(tmp_path / "s.onnx", threads=1)
    got = np.concatenate([step.feed(wave[s:s + chunk]) for s in range(0, len(wave) - chunk + 1, chunk)], -1)
    assert np.abs(got - reference).max() <= TOL


def test_bad_chunk_size_and_format():
    spotter = make_spotter()
    with pytest.raises(ConfigError, match="multiple of"):
        prepare_step(spotter, 1000)
    with pytest.raises(ConfigError, match="format"):
        export_spotter(spotter, "x.bin", "tflite")
    with pytest.raises(ConfigError, match="ONNX export only"):
        export_spotter(spotter, "x.pt", "torchscript", quantize="int8")


# --------------------------------------------------------------------------------------------- example
def run_cli(argv: list[str]) -> str:
    from speechconv.cli.main import main

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def test_onnx_engine_prints_the_same_csv_as_the_torch_engine(tmp_path):
    """`speechconv detect --engine onnx` on an exported model (its directory, or the .onnx file alone with
    the detector options in its metadata) prints what the PyTorch engine prints, also with --threshold."""
    from speechconv.pretrained import save_pretrained

    torch.manual_seed(0)
    net = build_model({"name": "tdnn", "num_classes": len(LABELS)})
    frontend = build_frontend({"name": "logmel", "n_mels": net.in_features, "normalization": "global",
                               "global_mean": [float(np.log(np.float32(1e-6)))] * net.in_features,
                               "global_std": [1.0] * net.in_features})
    spotter = KeywordSpotter(frontend, net, LABELS).eval()
    wave = burst_wave(6.0, seed=5)
    wave[:SR] = 0.0
    wav = tmp_path / "clip.wav"
    sf.write(wav, wave, SR, subtype="FLOAT")
    with torch.no_grad():
        scores = spotter(torch.from_numpy(wave))[0, 1].numpy()
    smoothed = np.sort(Detector(smoothing_frames=3).smooth(scores))

    def threshold_between(q: float) -> float:  # halfway between two smoothed values: no float ties
        i = int(q * len(smoothed))
        return float((smoothed[i] + smoothed[i + 1]) / 2)

    spotter.detector = {"threshold": threshold_between(0.8), "smoothing_frames": 3,
                        "merge_seconds": 0.05, "refractory_seconds": 0.1}
    model_dir = save_pretrained(spotter, tmp_path / "model")
    onnx_path = model_dir / "model.onnx"
    run_cli(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(onnx_path),
             "--chunk-samples", "800"])
    expected = run_cli(["detect", str(wav), "--model", str(model_dir), "--engine", "torch", "--quiet"])
    assert len(expected.splitlines()) > 3  # several detections
    for model in (model_dir, onnx_path):
        assert run_cli(["detect", str(wav), "--model", str(model), "--engine", "onnx", "--quiet"]) == expected
    # a lower --threshold override gives more (or as many) detections, identically on both engines
    lower = threshold_between(0.5)
    expected = run_cli(["detect", str(wav), "--model", str(model_dir), "--threshold", str(lower), "--quiet"])
    assert run_cli(["detect", str(wav), "--model", str(onnx_path), "--threshold", str(lower), "--engine", "onnx",
                    "--quiet"]) == expected
