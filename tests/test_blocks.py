"""Conv-pool blocks: sizes against the formulas, FFT == direct, streamed == offline, pooling behaviour."""

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechconv.blocks import (
    ConvPool1d,
    ConvPool2d,
    Residual,
    StreamingSequential,
    direct_conv,
    fft_conv,
)
from speechconv.blocks import functional as SF
from speechconv.errors import ConfigError


def stream(module, x, sizes):
    outs, cache, i = [], None, 0
    for n in sizes:
        y, cache = module.stream(x[..., i:i + n], cache)
        outs.append(y)
        i += n
    y, cache = module.stream(x[..., i:], cache)
    outs.append(y)
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("k, s, d", [(1, 1, 1), (3, 1, 1), (5, 2, 1), (3, 1, 2), (4, 3, 2)])
def test_conv_output_size_matches_formula(padding, k, s, d):
    block = ConvPool1d(2, 3, k, stride=s, dilation=d, padding=padding)
    for n in (9, 16, 31):
        y = block(torch.randn(1, 2, n))
        assert y.shape[-1] == SF.output_size(n, k, s, d, padding)
        assert block.output_shape((2, n)) == tuple(y.shape[1:])


@pytest.mark.parametrize("pool", ["max", "avg", "learned", "conv1x1"])
def test_pool_output_shapes_2d(pool):
    block = ConvPool2d(3, 4, 3, padding="valid", pool=pool, pool_size=2)
    y = block(torch.randn(2, 3, 20, 17))
    assert tuple(y.shape[1:]) == block.output_shape((3, 20, 17))
    if pool in ("max", "avg", "learned"):
        assert y.shape[-2:] == ((20 - 3 + 1) // 2, (17 - 3 + 1) // 2)


def test_parameter_count_matches_formula():
    block = ConvPool2d(6, 16, 5, padding="valid")
    assert sum(p.numel() for p in block.parameters()) == SF.conv_params(6, 16, (5, 5))
    bn = ConvPool1d(8, 12, 3, batch_norm=True)
    assert sum(p.numel() for p in bn.parameters()) == SF.conv_params(8, 12, 3, bias=False) + SF.batch_norm_params(12)


def test_macs_match_formula():
    block = ConvPool2d(1, 6, 5, padding="valid", pool="max")
    assert block.count_macs((1, 32, 32)) == 6 * 28 * 28 * 25
    learned = ConvPool1d(4, 4, 3, pool="learned", pool_size=2, pool_hidden=3)
    conv_out = 10 - 3 + 1 + 2  # causal: same length
    pooled = conv_out // 2
    expected = 4 * conv_out * 4 * 3 + 4 * (3 * pooled * 2 + 1 * pooled * 3)
    assert learned.count_macs((4, 10)) == expected


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("k, s, d, groups", [(3, 1, 1, 1), (7, 2, 1, 1), (5, 1, 3, 1), (4, 3, 2, 2), (9, 1, 1, 4)])
def test_fft_equals_direct(nd, k, s, d, groups):
    torch.manual_seed(0)
    c_in, c_out = 4, 8
    shape = (2, c_in, 40) if nd == 1 else (2, c_in, 23, 30)
    x = torch.randn(shape, dtype=torch.float64)
    w = torch.randn((c_out, c_in // groups) + (k,) * nd, dtype=torch.float64)
    b = torch.randn(c_out, dtype=torch.float64)
    pads = [(k - 1, 2)] * nd
    ref = direct_conv(x, w, b, s, d, pads, groups)
    got = fft_conv(x, w, b, s, d, pads, groups)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() / ref.abs().max() < 1e-4


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_fft_block_equals_direct_block(padding):
    torch.manual_seed(1)
    direct = ConvPool2d(3, 5, (5, 4), stride=2, dilation=(1, 2), padding=("same", padding) if padding == "causal"
                        else padding, activation=None)
    fft = ConvPool2d(3, 5, (5, 4), stride=2, dilation=(1, 2), padding=direct.padding, activation=None,
                     conv_impl="fft")
    fft.load_state_dict(direct.state_dict())
    x = torch.randn(2, 3, 21, 33)
    a, b = direct(x), fft(x)
    assert (a - b).abs().max() / a.abs().max() < 1e-4


@pytest.mark.parametrize("pool", [None, "max", "avg", "learned", "conv1x1"])
@pytest.mark.parametrize("pool_padding", ["valid", "causal"])
@pytest.mark.parametrize("impl", ["direct", "fft"])
def test_streamed_equals_offline(pool, pool_padding, impl):
    torch.manual_seed(2)
    net = StreamingSequential(
        ConvPool1d(4, 8, 3, stride=2, dilation=2, pool=pool, pool_padding=pool_padding, batch_norm=True,
                   conv_impl=impl),
        ConvPool1d(8, 6, 5, pool=pool, pool_size=3, pool_stride=2, pool_padding=pool_padding, conv_impl=impl),
    ).eval()
    x = torch.randn(2, 4, 157)
    offline = net(x)
    for sizes in ([1] * 157, [7, 1, 1, 30, 2], [64, 64], [3, 4, 5, 6, 7, 8, 9]):
        streamed = stream(net, x, sizes)
        assert streamed.shape == offline.shape
        assert (streamed - offline).abs().max() <= 1e-5


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12), stride=st.integers(1, 3),
       kernel=st.integers(1, 6), dilation=st.integers(1, 3))
def test_streamed_equals_offline_random_chunks_2d(sizes, stride, kernel, dilation):
    torch.manual_seed(3)
    net = StreamingSequential(
        ConvPool2d(1, 4, (3, kernel), stride=(1, stride), dilation=(1, dilation), padding=("same", "causal"),
                   pool="max", pool_size=(2, 2), pool_padding="causal"),
        ConvPool2d(4, 3, 3, padding=("valid", "causal"), pool="conv1x1", pool_stride=(1, 2)),
    ).eval()
    x = torch.randn(1, 1, 12, 120)
    offline = net(x)
    assert (stream(net, x, sizes) - offline).abs().max() <= 1e-5


def test_residual_streams_with_strided_shortcut():
    torch.manual_seed(4)
    body = StreamingSequential(ConvPool1d(4, 8, 9, stride=2, batch_norm=True),
                               ConvPool1d(8, 8, 9, batch_norm=True, activation=None))
    block = Residual(body, ConvPool1d(4, 8, 1, stride=2, activation=None)).eval()
    x = torch.randn(1, 4, 99)
    offline = block(x)
    for sizes in ([1] * 99, [5, 2, 11], [50]):
        assert (stream(block, x, sizes) - offline).abs().max() <= 1e-5


def test_same_padding_in_time_refuses_to_stream():
    block = ConvPool1d(1, 1, 3, padding="same")
    _, cache = block.stream(torch.randn(1, 1, 10))
    with pytest.raises(ConfigError):
        block.stream(torch.randn(1, 1, 10), {"conv": torch.zeros(1, 1, 2)})
    with pytest.raises(ConfigError):
        ConvPool2d(1, 1, 3, padding=("causal", "causal"))


def test_learned_pool_is_shared_across_channels():
    torch.manual_seed(6)
    block = ConvPool1d(1, 3, 1, activation=None, bias=False, pool="learned", pool_size=2, pool_hidden=3)
    with torch.no_grad():
        block.conv.weight.copy_(torch.tensor([[[1.0]], [[1.0]], [[2.0]]]))
    y = block(torch.randn(1, 1, 10))
    # channels 0 and 1 see identical maps, so the shared pooling network gives identical outputs
    assert torch.allclose(y[0, 0], y[0, 1])
    assert not torch.allclose(y[0, 0], y[0, 2])


def test_empirical_receptive_field_matches_geometry():
    torch.manual_seed(7)
    net = StreamingSequential(
        ConvPool1d(1, 4, 3, dilation=2, pool="max", pool_size=2, pool_padding="causal"),
        ConvPool1d(4, 4, 3, stride=2, activation="tanh"),
    ).eval()
    field = net.receptive_field()
    x = torch.randn(1, 1, 64)
    base = net(x)
    j = 30
    x2 = x.clone()
    x2[..., j] += 5.0
    changed = (net(x2) - base).abs().amax(dim=1)[0] > 1e-7
    for t in range(base.shape[-1]):
        lo, hi = field.span_of(t)
        if changed[t]:
            assert lo <= j <= hi


def test_inspect_lenet5_prints_total():
    out = subprocess.run([sys.executable, "-m", "speechconv.cli.main", "inspect", "lenet5"],
                         capture_output=True, text=True, check=True).stdout
    assert "total parameters: 61,706" in out
    assert "6x14x14" in out and "16x5x5" in out


def test_fold_batch_norm_keeps_outputs():
    from speechconv.blocks.fuse import fold_batch_norm

    torch.manual_seed(8)
    net = StreamingSequential(ConvPool1d(4, 8, 3, batch_norm=True), ConvPool1d(8, 6, 5, dilation=2, batch_norm=True))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 4, 50)
    before = net(x)
    fold_batch_norm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    assert (net(x) - before).abs().max() < 1e-5
