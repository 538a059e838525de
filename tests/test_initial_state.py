"""One state before the first sample: offline inference, the streaming engine (and so `detect`), the
exported ONNX step and the training forward give the same scores from sample 0, for every audio model."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import speechconv.models
from speechconv.audio import save_audio
from speechconv.detect import detect_file
from speechconv.models import list_models
from speechconv.streaming import StreamingEngine
from speechconv.training import AudioClassifier

for _info in pkgutil.iter_modules(speechconv.models.__path__):
    importlib.import_module(f"speechconv.models.{_info.name}")
AUDIO_MODELS = [entry.name for entry in list_models() if entry.task == "audio"]
SR = 16000
LABELS = ["_unknown_", "hello"]
TOL = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


def start_wave(seconds: float = 2.0) -> torch.Tensor:
    """A loud chirp in the very first 0.4 s, then quiet noise: the start of the file matters."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * SR)) / SR
    chirp = 0.5 * torch.sin(2 * torch.pi * (300 + 2000 * t) * t) * (t < 0.4)
    return (chirp + 0.01 * torch.randn(len(t), generator=gen)).float()


def classifier(name: str) -> AudioClassifier:
    torch.manual_seed(0)
    module = AudioClassifier(frontend={"name": "logmel", "n_mels": 40}, model={"name": name}, labels=LABELS,
                             loss="max_pool")
    for m in module.modules():  # non-trivial batch-norm statistics, so eval mode matters
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return module.eval()


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_every_path_gives_the_same_scores_from_sample_zero(name, tmp_path):
    module = classifier(name)
    spotter = module.spotter
    if not spotter.streamable:
        pytest.skip(f"{name} cannot stream")
    wave = start_wave()
    with torch.no_grad():
        offline = spotter(wave[None])[0, 1].numpy()
        training_view = torch.softmax(module(wave[None]), dim=1)[0, 1].numpy()
    engine = StreamingEngine(spotter)
    parts = [engine.feed(wave[i:i + 777]) for i in range(0, len(wave), 777)]
    times = np.concatenate([p[0] for p in parts])
    streamed = np.concatenate([p[1] for p in parts])
    n = spotter.output_frames(len(wave))
    assert len(offline) == len(streamed) == len(training_view) == n
    np.testing.assert_allclose(streamed, offline, atol=TOL)
    np.testing.assert_allclose(training_view, offline, atol=TOL)
    # frame 0 is the first output the real audio completes: it describes the first hop(s) of the file
    assert times[0] <= spotter.output_period + spotter.frontend.n_fft / SR + 1e-9
    np.testing.assert_array_equal(times, spotter.output_times(0, n))
    # `speechconv detect`'s per-file path: the same curve (no smoothing)
    path = tmp_path / "start.wav"
    save_audio(path, wave.numpy(), SR, subtype="FLOAT")
    spotter.detector = {"threshold": 0.0, "smoothing_frames": 1}
    result = detect_file(spotter, str(path), keep_curve=True)
    np.testing.assert_allclose(result.curve.scores, offline, atol=TOL)


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_exported_onnx_step_starts_where_the_engine_starts(name, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from speechconv.export import export_spotter
    from speechconv.export.onnx import OnnxStep

    spotter = classifier(name).spotter
    if not spotter.streamable:
        pytest.skip(f"{name} cannot stream")
    chunk = spotter.samples_per_output * max(1, 1600 // spotter.samples_per_output)
    spec = export_spotter(spotter, tmp_path / "step.onnx", "onnx", chunk)
    assert spec.warmup_samples == spotter.warmup_samples
    assert spec.first_output_time == spec.stream_start_time == pytest.approx(spotter.output_times(0, 1)[0])
    wave = start_wave()[: (len(start_wave()) // chunk) * chunk].numpy()
    step = OnnxStep(tmp_path / "step.onnx", threads=1)
    scores = [step.feed(wave[i:i + chunk])[1] for i in range(0, len(wave), chunk)]
    with torch.no_grad():
        offline = spotter(torch.from_numpy(wave)[None])[0, 1].numpy()
    scores = np.concatenate(scores)[: len(offline)]
    np.testing.assert_allclose(scores, offline, atol=TOL)


def test_initial_state_is_silence_and_tracks_the_weights():
    module = classifier("tc_resnet")
    spotter = module.spotter
    state = spotter.initial_state(2)
    assert all(v.shape[0] == 2 for v in state.values() if v.ndim >= 2)
    with torch.no_grad():  # the state after the warm-up is the state after any longer silence
        _, longer = spotter.stream(torch.zeros(1, 3 * spotter.samples_per_output), spotter.initial_state())
    for k, v in spotter.initial_state().items():
        torch.testing.assert_close(longer[k], v, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        next(spotter.model.parameters()).add_(0.1)
    changed = spotter.initial_state(1)
    assert any(not torch.allclose(changed[k], state[k][:1]) for k in state if k.startswith("model."))
    module.train()  # computing the state does not touch batch-norm statistics or the mode
    bn = next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d))
    before = bn.running_mean.clone()
    spotter.initial_state(4)
    assert module.training and torch.equal(bn.running_mean, before)
