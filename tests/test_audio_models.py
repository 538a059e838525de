"""Audio model zoo: shapes, parameter counts, declared context vs receptive field (by block math and
empirically), streaming == offline, registry and config errors."""

from __future__ import annotations

import math

import pytest
import torch

from speechconv.blocks import ConvPool1d, ConvPool2d, Dense
from speechconv.blocks import functional as SF
from speechconv.blocks.separable import DepthwiseSeparable
from speechconv.blocks.tdnn import TDNNLayer, stack_lookahead
from speechconv.errors import ConfigError
from speechconv.models import build_model, get_entry
from speechconv.models.registry import load_model_config

pytestmark = pytest.mark.usefixtures("one_thread")


# Small configs keep the tests fast; the defaults are covered by the registry and count tests.
CASES = {
    "tdnn": dict(widths=(24, 24, 24, 24)),
    "tdnn_sub": dict(widths=(16, 16, 16, 16, 16)),
    "tdnn_strided": dict(name="tdnn", contexts=([-1, 0, 1], [-1, 2], [-2, 0, 2]), widths=(16, 16, 16),
                         strides=(2, 1, 2)),
    "freq_cnn": dict(channels=8, widths=(24, 24)),
    "cnn_trad_fpool3": dict(channels=(8, 8), low_rank=8, hidden=16),
    "tc_resnet": dict(width_multiplier=0.5),
    "tc_resnet14": dict(width_multiplier=0.5),
    "ds_cnn": dict(channels=16, blocks=2, lookahead=3),
    "ds_cnn_flat": dict(name="ds_cnn", channels=8, blocks=1, freq_collapse="flatten"),
    "mlp_scan": dict(window=9, hidden=(16, 16), lookahead=2),
    "mlp_scan_conv": dict(window=9, hidden=(16, 16), lookahead=2, stride=2),
}
AUDIO_MODELS = ("tdnn", "tdnn_sub", "freq_cnn", "cnn_trad_fpool3", "tc_resnet", "tc_resnet14", "ds_cnn",
                "mlp_scan", "mlp_scan_conv")


def make(case: str, **extra):
    config = dict(CASES[case])
    config.setdefault("name", case)
    torch.manual_seed(0)
    model = build_model({**config, **extra})
    return randomize_norms(model).eval()


def randomize_norms(model):
    """Non-trivial batch-norm statistics and affine parameters, so eval-mode BN is not the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def relu_to_tanh(model):
    """Swap every ReLU for tanh in place (same geometry and parameters)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, torch.nn.Tanh())
    return model


def formula_params(model) -> int:
    """Parameters from the functional formulas, block by block."""
    total = 0
    for m in model.modules():
        if isinstance(m, (ConvPool1d, ConvPool2d)):
            bn = not isinstance(m.norm, torch.nn.Identity)
            total += SF.conv_params(m.in_channels, m.out_channels, m.kernel_size, m.groups,
                                    bias=m.conv.bias is not None)
            total += SF.batch_norm_params(m.out_channels) if bn else 0
        elif isinstance(m, Dense):
            total += SF.linear_params(m.linear.in_features, m.linear.out_features)
    return total


# --- registry and configs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_registered_as_audio_model(name):
    entry = get_entry(name)
    assert entry.task == "audio" and entry.input_shape == (40, 100) and entry.description
    model = build_model(name).eval()
    y = model(torch.randn(1, 40, 100))
    assert y.shape == (1, 2, model.output_frames(100))


def test_build_from_yaml(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("name: tdnn\nin_features: 20\nnum_classes: 4\ncontexts: [[-1, 0, 1], [-3, 0, 3]]\n"
                    "widths: [16, 8]\nbatch_norm: false\n")
    model = build_model(load_model_config(str(path)))
    assert [layer.context for layer in model.body] == [(-1, 0, 1), (-3, 0, 3), (0,)]
    assert model.num_classes == 4 and model.lookahead == 4 and model.left_context == 4


@pytest.mark.parametrize("config, message", [
    (dict(name="tdnn", contexts=([-1, 0, 1],), widths=(8, 8)), "one entry per hidden layer"),
    (dict(name="tdnn", contexts=([-2, 0, 1],), widths=(8,)), "evenly spaced"),
    (dict(name="tdnn", contexts=([1, 2],), widths=(8,)), "lookahead"),
    (dict(name="cnn_trad_fpool3", window=20), "window=20"),
    (dict(name="cnn_trad_fpool3", lookahead=40), "lookahead"),
    (dict(name="freq_cnn", in_features=8, freq_kernel=8), "too few"),
    (dict(name="ds_cnn", freq_collapse="sum"), "freq_collapse"),
    (dict(name="tc_resnet", width_multiplier=0), "width_multiplier"),
    (dict(name="mlp_scan", window=5, lookahead=5), "lookahead"),
    (dict(name="tdnn", depth=3), "bad options"),
])
def test_bad_configs_raise_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model(config)


# --- shapes and counts ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("frames", [1, 7, 64, 101])
def test_output_shape_follows_frame_stride(case, frames):
    model = make(case, num_classes=3)
    y = model(torch.randn(2, 40, frames))
    # causal padding everywhere: one output per frame_stride input frames, the first at frame 0
    assert y.shape == (2, 3, model.output_frames(frames))
    assert model.output_frames(frames) == math.ceil(frames / model.frame_stride)


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_count_matches_formulas(case):
    model = make(case)
    assert model.num_parameters() == formula_params(model)


@pytest.mark.parametrize("name, config, expected", [
    # TDNN: 8 * (10 * 3 + 1) + 6 * (8 * 2 + 1) + 3 * (6 + 1)
    ("tdnn", dict(in_features=10, num_classes=3, contexts=([-1, 0, 1], [-2, 2]), widths=(8, 6),
                  batch_norm=False), 248 + 102 + 21),
    # Sainath & Parada 2015 report 244K for cnn-trad-fpool3
    ("cnn_trad_fpool3", dict(), 64 * (8 * 20 + 1) + 64 * (64 * 4 * 10 + 1) + 32 * (64 * 8 * 4 + 1)
     + 128 * (32 + 1) + 2 * (128 + 1)),
    # TC-ResNet8, 12 classes (paper: 66K): first conv (no bias), 3 blocks of conv9-BN, conv9-BN, conv1-BN
    ("tc_resnet", dict(num_classes=12), 40 * 16 * 3
     + sum(a * b * 9 + 2 * b + b * b * 9 + 2 * b + a * b + 2 * b for a, b in [(16, 24), (24, 32), (32, 48)])
     + 12 * 49),
    # DS-CNN-S, 12 classes: conv 4x10 + BN, 4 x (depthwise 3x3 + BN, pointwise + BN), 1x1 head
    ("ds_cnn", dict(num_classes=12), 64 * 40 + 128 + 4 * (64 * 9 + 128 + 64 * 64 + 128) + 12 * 65),
    # MLP over a 5-frame window of 10 features: 50 -> 7 -> 3
    ("mlp_scan", dict(in_features=10, num_classes=3, window=5, hidden=(7,), lookahead=0), 7 * 51 + 3 * 8),
])
def test_hand_computed_parameter_counts(name, config, expected):
    assert build_model({"name": name, **config}).num_parameters() == expected


def test_tc_resnet8_and_cnn_trad_totals():
    assert build_model({"name": "tc_resnet", "num_classes": 12}).num_parameters() == 65_148
    assert build_model("cnn_trad_fpool3").num_parameters() == 244_258


def test_macs_per_second_of_a_small_tdnn():
    model = build_model(dict(name="tdnn", in_features=10, num_classes=3, contexts=([-1, 0, 1], [-2, 2]),
                             widths=(8, 6), batch_norm=False))
    per_frame = 8 * 10 * 3 + 6 * 8 * 2 + 3 * 6
    assert model.macs_per_second(100.0) == 100 * per_frame


def test_depthwise_separable_parameters():
    block = DepthwiseSeparable(16, 32, (3, 5), batch_norm=False, activation="relu")
    expected = SF.conv_params(16, 16, (3, 5), groups=16) + SF.conv_params(16, 32, 1)
    assert sum(p.numel() for p in block.parameters()) == expected == 16 * 16 + 32 * 17
    assert block.count_macs((16, 10, 20)) == 16 * 10 * 20 * 15 + 32 * 10 * 20 * 16


# --- declared context ---------------------------------------------------------------------------------
def tdnn_context(contexts, strides):
    """(left, right) total context of stacked TDNN layers, from their offsets."""
    left = right = 0
    rate = 1
    for context, stride in zip(contexts, strides):
        left += -min(context) * rate
        right += max(context) * rate
        rate *= stride
    return left, right


@pytest.mark.parametrize("case, left, lookahead, stride", [
    ("tdnn", 2 + 2 + 3, 2 + 2 + 3, 1),
    ("tdnn_sub", 13, 9, 1),  # Peddinti et al. 2015: total context [-13, 9]
    ("tdnn_strided", *tdnn_context(([-1, 0, 1], [-1, 2], [-2, 0, 2]), (2, 1, 2)), 4),
    ("freq_cnn", 1 + 2 + 2, 1 + 2 + 2, 1),
    ("cnn_trad_fpool3", 23, 8, 1),  # the paper's 23 left, 8 right frames
    ("tc_resnet", 2 + 8 * (1 + 2) + 8 * (2 + 4) + 8 * (4 + 8), 0, 8),
    ("ds_cnn", 9 + 2 * 2 * 2 - 3, 3, 2),
    ("mlp_scan", 6, 2, 1),
])
def test_declared_context(case, left, lookahead, stride):
    model = make(case)
    field = model.receptive_field()
    assert (model.left_context, model.lookahead, model.frame_stride) == (left, lookahead, stride)
    assert model.left_context + model.lookahead + 1 == field.size
    assert model.context() == dict(frame_stride=stride, receptive_field=field.size, left_context=left,
                                   lookahead=lookahead)


def test_tdnn_lookahead_is_right_context_times_rate():
    contexts, strides = ([-1, 0, 1], [-1, 2], [-2, 0, 2]), (2, 1, 2)
    assert stack_lookahead([max(c) for c in contexts], strides) == 1 + 2 * 2 + 2 * 2
    layer = TDNNLayer(4, 4, [-1, 2])
    assert (layer.kernel_size, layer.dilation, layer.left_context, layer.right_context) == ((2,), (3,), 1, 2)


def tap_offsets(geometry) -> set[int]:
    """Exact lags (input frames before the newest one) an output depends on: ``sum_l k_l * d_l * rate_l``.

    The receptive field is their hull; dilated layers above strided ones leave holes in it.
    """
    lags, rate = {0}, 1
    for g in geometry:
        lags = {lag + k * g.dilation * rate for lag in lags for k in range(g.kernel)}
        rate *= g.stride
    return lags


@pytest.mark.parametrize("case", sorted(CASES))
def test_perturbing_a_frame_changes_exactly_its_receptive_fields(case):
    """Output t changes iff input frame j is one of its taps, inside ReceptiveField.span_of(t)
    (float64, eval mode); every model but the strided sparse TDNN has a hole-free field."""
    # ReLU can zero every path from an edge frame (dead units), so use a strictly monotonic activation
    model = relu_to_tanh(make(case)).double()
    field = model.receptive_field()
    lags = tap_offsets(model.geometry())
    assert max(lags) == field.size - 1
    assert (lags == set(range(field.size))) == (case != "tdnn_strided")
    frames = max(3 * field.size, 40)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 40, frames, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        base = model(x)
        for j in sorted({0, 1, field.size // 2, field.size, frames // 2, frames - 2, frames - 1}):
            x2 = x.clone()
            x2[..., j] += 3.0 * torch.randn(40, generator=gen, dtype=torch.float64)
            changed = (model(x2) - base).abs().amax(dim=1)[0] > 1e-9
            expected = torch.tensor([t * field.stride - j in lags for t in range(base.shape[-1])])
            in_span = torch.tensor([field.span_of(t)[0] <= j <= field.span_of(t)[1] for t in range(base.shape[-1])])
            assert torch.equal(changed, expected), f"frame {j}: {changed.nonzero().flatten().tolist()}"
            assert not (changed & ~in_span).any()


# --- streaming --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_streaming_equals_offline(case):
    model = make(case)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 40, 150, generator=gen)
    with torch.no_grad():
        offline = model(x)
        for _ in range(2):
            cache, outs, start = None, [], 0
            while start < x.shape[-1]:
                size = int(torch.randint(1, 20, (1,), generator=gen))
                y, cache = model.stream(x[..., start:start + size], cache)
                outs.append(y)
                start += size
            torch.testing.assert_close(torch.cat(outs, dim=-1), offline, atol=1e-5, rtol=1e-5)
