"""KeywordSpotter / StreamingEngine: streamed posteriors equal offline ones for every audio model."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import speechconv.models
from speechconv.blocks import ConvPool1d, StreamingSequential
from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.models import build_model, list_models
from speechconv.models.base import AudioModel
from speechconv.streaming import FRAME_COUNTER, KeywordSpotter, StreamingEngine, default_keyword

SR = 16000
LABELS = ["_unknown_", "hello"]
TOL = 1e-5

# Register every model module, wired into speechconv.models or not yet.
for _info in pkgutil.iter_modules(speechconv.models.__path__):
    importlib.import_module(f"speechconv.models.{_info.name}")
AUDIO_MODELS = [entry.name for entry in list_models() if entry.task == "audio"]


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyModel(AudioModel):
    """Causal conv, max pool with *valid* padding (receptive field offset != 0), strided dilated conv."""

    def __init__(self, in_features: int = 40, num_classes: int = 2, activation: str = "relu"):
        super().__init__(in_features, num_classes, lookahead=2)
        self.body = StreamingSequential(
            ConvPool1d(in_features, 8, 3, activation=activation, pool="max", pool_size=3, pool_stride=2),
            ConvPool1d(8, 8, 3, dilation=2, stride=2, activation=activation),
            ConvPool1d(8, num_classes, 1, activation=None),
        )
        self.config = {"name": "tiny"}


def make_spotter(model_name: str | None = None, frontend: str = "logmel", **frontend_options) -> KeywordSpotter:
    torch.manual_seed(0)
    if model_name is None:
        model = TinyModel(activation="tanh")
    else:
        model = build_model({"name": model_name, "num_classes": len(LABELS)})
    n_features = getattr(model, "in_features", 40)
    options = {"name": frontend, **frontend_options}
    if frontend == "mfcc":
        options.setdefault("n_mfcc", n_features)
    else:
        options.setdefault("n_mels", n_features)
    return KeywordSpotter(build_frontend(options), model, LABELS).eval()


def wave_of(seconds: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    return (0.05 * torch.randn(n, generator=gen) + 0.3 * torch.sin(2 * torch.pi * 440 * t)).float()


@torch.no_grad()
def stream(spotter: KeywordSpotter, wave: torch.Tensor, sizes, cycle: bool = True) -> torch.Tensor:
    """Posteriors of ``wave`` fed in chunks of the given sizes, cycled until the wave is used up
    (or, with ``cycle=False``, each size once and then the rest in one chunk)."""
    sizes = list(sizes) if cycle else list(sizes) + [wave.shape[-1]]
    state, outputs, start, i = None, [], 0, 0
    while start < wave.shape[-1]:
        size = sizes[i % len(sizes)]
        posteriors, state = spotter.stream(wave[None, start:start + size], state)
        outputs.append(posteriors)
        start, i = start + size, i + 1
    return torch.cat(outputs, dim=-1)


def test_every_registered_audio_model_is_covered():
    assert {"tdnn", "tc_resnet"} <= set(AUDIO_MODELS), AUDIO_MODELS


@pytest.mark.parametrize("model_name", AUDIO_MODELS)
def test_streaming_equals_offline_for_every_model(model_name):
    spotter = make_spotter(model_name)
    wave = wave_of(1.3)
    with torch.no_grad():
        offline = spotter(wave[None])
    assert offline.shape == (1, len(LABELS), spotter.output_frames(len(wave)))
    torch.testing.assert_close(offline.sum(dim=1), torch.ones(1, offline.shape[-1]))  # softmax over classes
    hop = spotter.frontend.hop_length
    for size in (hop, 777, SR, len(wave)):
        streamed = stream(spotter, wave, [size])
        assert streamed.shape == offline.shape, (model_name, size)
        assert (streamed - offline).abs().max().item() <= TOL, (model_name, size)


@pytest.mark.parametrize("frontend", ["pcen", "mfcc"])
def test_streaming_equals_offline_for_stateful_and_cepstral_frontends(frontend):
    spotter = make_spotter(None, frontend)
    wave = wave_of(1.1)
    with torch.no_grad():
        offline = spotter(wave[None])
    for size in (160, 777, 4000):
        assert (stream(spotter, wave, [size]) - offline).abs().max().item() <= TOL


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=0, max_value=4000), min_size=1, max_size=10))
def test_random_chunk_sequences_equal_offline(sizes):
    spotter = _hypothesis_spotter()
    wave = wave_of(0.9, seed=3)
    with torch.no_grad():
        offline = spotter(wave[None])
    streamed = stream(spotter, wave, sizes, cycle=False)  # includes empty and 1-sample chunks
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max().item() <= TOL


_CACHED: dict[str, KeywordSpotter] = {}


def _hypothesis_spotter() -> KeywordSpotter:
    if "tc" not in _CACHED:
        _CACHED["tc"] = make_spotter("tc_resnet")
    return _CACHED["tc"]


def test_output_times_follow_the_receptive_field_formula():
    spotter = make_spotter(None)
    field = spotter.model.receptive_field()
    fe = spotter.frontend
    times = spotter.output_times(3, 4)
    # frames count from the first output after the warm-up silence; times from the stream's first sample
    warm_frames = spotter.model.output_frames(fe.num_frames(spotter.warmup_samples))
    for i, t in enumerate(range(3, 7)):
        end_frame = field.offset + (t + warm_frames) * field.stride + field.size - 1
        expected = (end_frame * fe.hop_length + fe.n_fft - spotter.model.lookahead * fe.hop_length
                    - spotter.warmup_samples) / SR
        assert times[i] == pytest.approx(expected)
    # a causal model: output t ends at feature frame t * stride
    causal = make_spotter("tc_resnet")
    hop, stride = causal.frontend.hop_length, causal.model.frame_stride
    assert causal.output_times(5, 1)[0] == pytest.approx((5 * stride * hop + causal.frontend.n_fft) / SR)


def test_output_t_depends_on_exactly_the_samples_before_its_time():
    spotter = make_spotter(None)
    wave = wave_of(1.0)
    t = 10
    end_sample = int(round((spotter.output_times(t, 1)[0] + spotter.model.lookahead * 160 / SR) * SR))
    with torch.no_grad():
        base = spotter(wave[None])[..., : t + 1]
        later = wave.clone()
        later[end_sample:] += 0.5  # everything after the window of output t
        assert torch.equal(spotter(later[None])[..., : t + 1], base)
        last = wave.clone()
        last[end_sample - 160:end_sample] += torch.randn(160)  # the last hop of samples output t sees
        assert not torch.equal(spotter(last[None])[..., t], base[..., t])


def test_engine_feed_returns_keyword_scores_and_times():
    spotter = make_spotter("tdnn")
    wave = wave_of(1.2)
    with torch.no_grad():
        offline = spotter(wave[None])[0, spotter.keyword_index].numpy()
    engine = StreamingEngine(spotter)
    times, scores = zip(*(engine.feed(wave[i:i + 2500]) for i in range(0, len(wave), 2500)))
    times, scores = np.concatenate(times), np.concatenate(scores)
    np.testing.assert_allclose(scores, offline, atol=TOL)
    np.testing.assert_allclose(times, spotter.output_times(0, len(offline)))
    assert np.allclose(np.diff(times), spotter.output_period)


def test_engine_state_tensors_resume_a_stream():
    spotter = make_spotter("tc_resnet")
    wave = wave_of(1.5)
    whole = StreamingEngine(spotter)
    t_all, s_all = zip(*(whole.feed(wave[i:i + 3000]) for i in range(0, len(wave), 3000)))
    first = StreamingEngine(spotter)
    parts = [first.feed(wave[i:i + 3000]) for i in range(0, 12000, 3000)]
    saved = first.state_dict_tensors()
    assert all(isinstance(v, torch.Tensor) for v in saved.values())
    assert int(saved[FRAME_COUNTER]) == first.frames_done
    resumed = StreamingEngine(spotter)
    resumed.load_state_tensors(saved)
    parts += [resumed.feed(wave[i:i + 3000]) for i in range(12000, len(wave), 3000)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), np.concatenate(t_all))
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), np.concatenate(s_all), atol=1e-6)
    resumed.reset()
    initial = spotter.initial_state(1)  # a reset stream starts where every stream starts
    assert resumed.frames_done == 0 and resumed.state.keys() == initial.keys()
    assert all(torch.equal(resumed.state[k], v) for k, v in initial.items())


@pytest.mark.parametrize("model_name", [None, "tc_resnet"])
def test_init_state_has_fixed_shapes_and_means_a_silent_past(model_name):
    spotter = make_spotter(model_name)
    chunk = spotter.samples_per_output * 2
    state, warmup = spotter.init_state_with_warmup(1, chunk)
    shapes = {k: v.shape for k, v in state.items()}
    wave = wave_of(0.8)[: chunk * 12]
    with torch.no_grad():
        outputs = []
        for i in range(0, len(wave), chunk):
            posteriors, state = spotter.stream(wave[None, i:i + chunk], state)
            assert {k: v.shape for k, v in state.items()} == shapes
            outputs.append(posteriors)
        streamed = torch.cat(outputs, dim=-1)
        padded = spotter(torch.cat([torch.zeros(warmup), wave])[None])
    skip = spotter.output_frames(warmup)
    assert (streamed - padded[..., skip:]).abs().max().item() <= TOL
    with pytest.raises(ConfigError, match="multiple of the hop"):
        spotter.init_state(1, 777)


def test_spotter_validation():
    frontend = build_frontend({"name": "logmel", "n_mels": 40})
    with pytest.raises(ConfigError, match="3 labels"):
        KeywordSpotter(frontend, TinyModel(), ["a", "b", "c"])
    with pytest.raises(ConfigError, match="features"):
        KeywordSpotter(build_frontend({"name": "logmel", "n_mels": 20}), TinyModel(), LABELS)
    with pytest.raises(ConfigError, match="not one of the labels"):
        KeywordSpotter(frontend, TinyModel(), LABELS, keyword="bye")
    utterance = KeywordSpotter(build_frontend({"name": "logmel", "normalization": "utterance"}), TinyModel(), LABELS)
    with pytest.raises(ConfigError, match="cannot stream"):
        StreamingEngine(utterance)
    assert default_keyword(["_silence_", "_unknown_", "hello"]) == "hello"
    assert KeywordSpotter(frontend, TinyModel(), ["hello", "_unknown_"]).keyword_index == 0
