"""Scanning an MLP over time equals its convolutional form (mlp_to_conv), window by window."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechconv.blocks import ConvPool1d
from speechconv.models import build_model
from speechconv.models.mlp_scan import ConvScan, MLPScan, mlp_to_conv

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_mlp(window: int = 7, stride: int = 1, features: int = 8, steps: int = 5) -> MLPScan:
    """A small MLPScan after a few optimizer steps (weights away from their initialization)."""
    torch.manual_seed(0)
    model = MLPScan(in_features=features, num_classes=3, window=window, hidden=(16, 12), stride=stride,
                    lookahead=min(2, window - 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(4, features, 40)
    for _ in range(steps):
        scores = model(x)
        loss = F.cross_entropy(scores, torch.randint(0, 3, (4, scores.shape[-1])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def mlp_window_by_window(model: MLPScan, x: torch.Tensor, stride: int) -> torch.Tensor:
    """Reference: the plain MLP on the causal window ending at every stride-th frame (zeros before 0)."""
    window = model.options["window"]
    padded = F.pad(x, (window - 1, 0))
    outs = [model.mlp(padded[..., t:t + window]) for t in range(0, x.shape[-1], stride)]
    return torch.stack(outs, dim=-1)


@pytest.mark.parametrize("window, stride", [(7, 1), (1, 1), (5, 3), (4, 6)])
def test_conv_scan_equals_mlp_on_every_window(window, stride):
    model = trained_mlp(window, stride)
    conv = mlp_to_conv(model)
    x = torch.randn(2, 8, 203)
    with torch.no_grad():
        reference = mlp_window_by_window(model, x, stride)
        scanned = conv(x)
        batched = model(x)
    assert scanned.shape == reference.shape == (2, 3, -(-203 // stride))
    torch.testing.assert_close(scanned, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-5)


def test_fft_conv_scan_equals_mlp():
    model = trained_mlp(window=31)
    x = torch.randn(1, 8, 150)
    with torch.no_grad():
        torch.testing.assert_close(mlp_to_conv(model, conv_impl="fft")(x), mlp_window_by_window(model, x, 1),
                                   atol=1e-5, rtol=1e-5)


def test_converted_network_structure_and_costs():
    model = trained_mlp(window=7)
    conv = mlp_to_conv(model)
    blocks = list(conv.body)
    assert all(isinstance(b, ConvPool1d) for b in blocks)
    assert [b.kernel_size[0] for b in blocks] == [7, 1, 1]
    assert blocks[0].padding == ("causal",)
    # first layer: the (H, F * W) weight is the (H, F, W) kernel flattened feature-major
    dense = model.body[0].layers[0].linear
    torch.testing.assert_close(blocks[0].conv.weight.reshape(16, 8 * 7), dense.weight)
    assert conv.num_parameters() == model.num_parameters() == 16 * (56 + 1) + 12 * 17 + 3 * 13
    assert conv.macs_per_second(100) == model.macs_per_second(100) == 100 * (56 * 16 + 16 * 12 + 12 * 3)
    assert conv.context() == model.context() == dict(frame_stride=1, receptive_field=7, left_context=4,
                                                     lookahead=2)
    assert conv.training == model.training


def test_converted_model_rebuilds_from_its_config():
    conv = mlp_to_conv(trained_mlp())
    rebuilt = build_model(conv.config)
    assert isinstance(rebuilt, ConvScan)
    rebuilt.load_state_dict(conv.state_dict())
    x = torch.randn(1, 8, 30)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), conv(x))


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_both_forms_stream(which):
    model = trained_mlp(window=6, stride=2)
    model = model if which == "mlp" else mlp_to_conv(model)
    x = torch.randn(2, 8, 90)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        offline = model(x)
        cache, outs, start = None, [], 0
        while start < x.shape[-1]:
            size = int(torch.randint(1, 9, (1,), generator=gen))
            y, cache = model.stream(x[..., start:start + size], cache)
            outs.append(y)
            start += size
    torch.testing.assert_close(torch.cat(outs, -1), offline, atol=1e-5, rtol=1e-5)


def test_bad_inputs():
    with pytest.raises(TypeError, match="MLPScan"):
        mlp_to_conv(build_model("tdnn"))
    with pytest.raises(ValueError, match="8 x 7"):
        trained_mlp().mlp(torch.randn(3, 8, 6))
