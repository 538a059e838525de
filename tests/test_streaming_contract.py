"""One streaming contract for every streamable module: ``forward(x) -> y`` offline and
``stream(x, state) -> (y, new_state)``, where chunked streaming gives the offline output and the input
state is never modified. Every subclass of :class:`StreamingModule` and :class:`SpectrogramFrontend` in
the package, and the :class:`KeywordSpotter`, is enumerated; a new one fails here until it has an example."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch

import speechconv
from speechconv.blocks import ConvPool1d, ConvPool2d, StreamingSequential
from speechconv.blocks.streaming import StreamingModule
from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.frontends.base import SpectrogramFrontend
from speechconv.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

for _info in pkgutil.walk_packages(speechconv.__path__, "speechconv."):
    importlib.import_module(_info.name)


def subclasses(cls) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def _c(**kwargs):
    return lambda: ConvPool1d(4, 5, 3, padding="causal", **kwargs)


def _blocks():
    from speechconv.blocks import Parallel, Residual
    from speechconv.blocks.dense import Dense
    from speechconv.blocks.reshape import AddChannelAxis, FlattenFrequency, PoolFrequency
    from speechconv.blocks.separable import DepthwiseSeparable
    from speechconv.blocks.tdnn import TDNNLayer
    from speechconv.models.mlp_scan import WindowMLP
    from speechconv.vision.blocks.neocognitron import CLayer, SLayer
    from speechconv.vision.blocks.spatial import AdaptiveAvgPool2d, GlobalAvgPool, LocalResponseNorm, Pool2d, ZeroPad2d
    from speechconv.vision.models.googlenet import Inception, InceptionSpec
    from speechconv.vision.models.resnet import BasicBlock, Bottleneck

    time_1d, time_2d, image = (2, 4, 40), (2, 1, 6, 40), (2, 3, 8, 8)
    causal = dict(padding="causal", bias=False)
    return {  # class: (factory, input shape)
        ConvPool1d: (lambda: ConvPool1d(4, 5, 3, dilation=2, pool_size=2, **causal), time_1d),
        ConvPool2d: (lambda: ConvPool2d(1, 3, 3, padding=("same", "causal"), pool_size=(2, 2)), time_2d),
        TDNNLayer: (lambda: TDNNLayer(4, 5, context=(-2, 0, 2)), time_1d),
        DepthwiseSeparable: (lambda: DepthwiseSeparable(1, 4, 3, padding=("same", "causal")), time_2d),
        StreamingSequential: (lambda: StreamingSequential(_c()(), torch.nn.ReLU(), ConvPool1d(5, 2, 1)), time_1d),
        Residual: (lambda: Residual(StreamingSequential(_c(stride=2)()), ConvPool1d(4, 5, 1, 2, padding="causal")),
                   time_1d),
        Parallel: (lambda: Parallel(_c()(), ConvPool1d(4, 2, 5, padding="causal")), time_1d),
        AddChannelAxis: (AddChannelAxis, time_1d),
        FlattenFrequency: (FlattenFrequency, time_2d),
        PoolFrequency: (PoolFrequency, time_2d),
        WindowMLP: (lambda: WindowMLP(4, 5, [8], 3, stride=2), time_1d),
        Dense: (lambda: Dense(160, 3), time_1d),
        SLayer: (lambda: SLayer(3, 4, 3), image),
        CLayer: (lambda: CLayer(3, 3), image),
        ZeroPad2d: (lambda: ZeroPad2d(1), image),
        Pool2d: (lambda: Pool2d("max", 3, 2, 1), image),
        AdaptiveAvgPool2d: (lambda: AdaptiveAvgPool2d(2), image),
        GlobalAvgPool: (GlobalAvgPool, image),
        LocalResponseNorm: (LocalResponseNorm, image),
        Inception: (lambda: Inception(3, InceptionSpec(2, 2, 3, 2, 3, 2)), image),
        BasicBlock: (lambda: BasicBlock(3, 4, 2), image),
        Bottleneck: (lambda: Bottleneck(3, 2, 2), image),
    }


ABSTRACT = {"_ConvPoolNd", "_OfflineUnit", "AudioModel"}


def _audio_model_classes() -> dict[type, str]:
    from speechconv.models import list_models

    names = {}
    for entry in list_models():
        if entry.task == "audio":
            names.setdefault(type(build_model({"name": entry.name})), entry.name)
    return names


def test_every_streaming_module_has_an_example():
    covered = set(_blocks()) | set(_audio_model_classes())
    ours = {c for c in subclasses(StreamingModule) if c.__module__.startswith("speechconv.")}  # not test doubles
    missing = sorted(c.__name__ for c in ours - covered if c.__name__ not in ABSTRACT)
    assert not missing, f"add an example of {missing} to this test"


def _chunked(module, x: torch.Tensor, sizes: list[int]):
    state, outs, start, i = None, [], 0, 0
    while start < x.shape[-1]:
        size = sizes[i % len(sizes)]
        before = {k: v.clone() for k, v in (state or {}).items()}
        y, new = module.stream(x[..., start:start + size], state)
        assert all(torch.equal(state[k], v) for k, v in before.items()), "stream() modified its input state"
        outs.append(y)
        state, start, i = new, start + size, i + 1
    return torch.cat(outs, dim=-1)


def _check(module, x: torch.Tensor) -> None:
    module.eval()
    with torch.no_grad():
        offline = module(x)
        assert isinstance(offline, torch.Tensor)
        first, state = module.stream(x)
        torch.testing.assert_close(first, offline, rtol=0, atol=0)
        assert isinstance(state, dict)
        if module.streamable:
            for sizes in ([1], [7, 2, 13], [x.shape[-1]]):
                torch.testing.assert_close(_chunked(module, x, sizes), offline, rtol=1e-5, atol=1e-5)
        elif type(module).stream is StreamingModule.stream:  # a unit that keeps no state refuses one
            with pytest.raises(ConfigError):
                module.stream(x, {"anything": torch.zeros(1)})


@pytest.mark.parametrize("name", sorted(c.__name__ for c in _blocks()))
def test_block_follows_the_contract(name):
    factory, shape = next(v for c, v in _blocks().items() if c.__name__ == name)
    torch.manual_seed(0)
    _check(factory(), torch.randn(shape))


@pytest.mark.parametrize("name", sorted(_audio_model_classes().values()))
def test_audio_model_follows_the_contract(name):
    torch.manual_seed(0)
    model = build_model({"name": name, "in_features": 40, "num_classes": 3})
    _check(model, torch.randn(2, 40, 120))


FRONTENDS = sorted((c for c in subclasses(SpectrogramFrontend) if c.__module__.startswith("speechconv.")),
                   key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", FRONTENDS, ids=lambda c: c.__name__)
def test_frontend_follows_the_contract(cls):
    frontend = build_frontend({"name": cls.name if isinstance(cls.name, str) else cls.__name__.lower()})
    assert type(frontend) is cls
    wave = torch.randn(2, 4000) * 0.1
    _check_waveform(frontend, wave)


def _check_waveform(module, wave: torch.Tensor) -> None:
    with torch.no_grad():
        offline = module(wave)
        for sizes in ([160], [1000, 37, 555]):
            torch.testing.assert_close(_chunked(module, wave, sizes), offline, rtol=1e-5, atol=1e-5)


def test_spotter_follows_the_contract():
    from speechconv.streaming.engine import KeywordSpotter

    torch.manual_seed(0)
    spotter = KeywordSpotter(build_frontend({"name": "pcen", "n_mels": 40}),
                             build_model({"name": "tc_resnet", "in_features": 40, "num_classes": 2}),
                             labels=["negative", "hello"]).eval()
    _check_waveform(spotter, torch.randn(1, 8000) * 0.1)


def test_phone_task_reads_the_streaming_encoder_and_not_a_hook():
    """The training-only phone task shares the model's layers through the same ``stream`` path."""
    from speechconv.streaming.engine import KeywordSpotter
    from speechconv.training.phone_task import encode, encoder_of

    torch.manual_seed(0)
    spotter = KeywordSpotter(build_frontend({"name": "logmel", "n_mels": 40}),
                             build_model({"name": "tc_resnet", "in_features": 40, "num_classes": 2}),
                             labels=["negative", "hello"]).eval()
    encoder, _ = encoder_of(spotter.model)
    wave = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        hidden = encode(spotter, encoder, wave)
        output_layer = spotter.model.body[-1]
        torch.testing.assert_close(output_layer(hidden), spotter.logits(wave))


def test_a_2d_same_padded_block_streams_along_time_only():
    block = ConvPool2d(1, 2, 3, padding=("same", "causal"))
    _check(block, torch.randn(1, 1, 5, 30))
