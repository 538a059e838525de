"""Image models: published parameter counts (torchvision, formulas, summaries), torchvision equivalence
with copied weights, small-variant shapes and receptive fields, and the offline spatial units."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm

from speechconv.blocks import functional as SF
from speechconv.models import build_model, get_entry
from speechconv.summary import summarize
from speechconv.vision.blocks.spatial import GlobalAvgPool, Pool2d, ZeroPad2d, padded_conv2d, pool_output_size

lin, bn = SF.linear_params, SF.batch_norm_params


def conv(in_channels: int, out_channels: int, k: int, bias: bool = True) -> int:
    """Square k x k kernel (an int kernel in ``conv_params`` is one-dimensional)."""
    return SF.conv_params(in_channels, out_channels, (k, k), bias=bias)


# ----------------------------------------------------------- parameter counts from the papers' formulas
def alexnet_formula() -> int:
    convs = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]
    return sum(conv(i, o, k) for i, o, k in convs) + lin(256 * 36, 4096) + lin(4096, 4096) + lin(4096, 1000)


def zfnet_formula() -> int:
    convs = [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
    return sum(conv(i, o, k) for i, o, k in convs) + lin(256 * 36, 4096) + lin(4096, 4096) + lin(4096, 1000)


def vgg_formula(stacks) -> int:
    total, channels = 0, 3
    for width, count in stacks:
        for _ in range(count):
            total += conv(channels, width, 3)
            channels = width
    return total + lin(512 * 49, 4096) + lin(4096, 4096) + lin(4096, 1000)


def conv_bn(i: int, o: int, k: int) -> int:
    return conv(i, o, k, bias=False) + bn(o)


def resnet_formula(block: str, counts) -> int:
    total, channels = conv_bn(3, 64, 7), 64
    for stage, (n, planes) in enumerate(zip(counts, (64, 128, 256, 512))):
        for i in range(n):
            stride = 2 if stage and not i else 1
            out = planes * (4 if block == "bottleneck" else 1)
            if block == "basic":
                total += conv_bn(channels, planes, 3) + conv_bn(planes, planes, 3)
            else:
                total += conv_bn(channels, planes, 1) + conv_bn(planes, planes, 3) + conv_bn(planes, out, 1)
            if stride != 1 or channels != out:
                total += conv_bn(channels, out, 1)
            channels = out
    return total + lin(channels, 1000)


def googlenet_formula() -> int:
    table = [  # in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5" (3x3 kernel in torchvision), pool proj
        (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
        (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
        (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
        (832, 384, 192, 384, 48, 128, 128),
    ]
    total = conv_bn(3, 64, 7) + conv_bn(64, 64, 1) + conv_bn(64, 192, 3)
    for c, a, r3, b3, r5, b5, pp in table:
        total += conv_bn(c, a, 1) + conv_bn(c, r3, 1) + conv_bn(r3, b3, 3) + conv_bn(c, r5, 1) + conv_bn(r5, b5, 3)
        total += conv_bn(c, pp, 1)
    return total + lin(1024, 1000)


@functools.lru_cache(maxsize=None)
def ours(name: str) -> torch.nn.Module:
    """Built once per test session: the full-size models take seconds to initialise."""
    return build_model(name).eval()


def googlenet_reference() -> torch.nn.Module:
    return tvm.googlenet(aux_logits=False, init_weights=True)


@functools.lru_cache(maxsize=None)
def reference(builder) -> torch.nn.Module:
    torch.manual_seed(0)
    return builder().eval()


FULL = {  # name: (published count, formula, torchvision builder or None, summary image size)
    "alexnet_full": (61_100_840, alexnet_formula, tvm.alexnet, 64),
    "zfnet_full": (62_357_608, zfnet_formula, None, None),
    "vgg16": (138_357_544, lambda: vgg_formula([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]), tvm.vgg16, None),
    "resnet18": (11_689_512, lambda: resnet_formula("basic", (2, 2, 2, 2)), tvm.resnet18, 32),
    "resnet34": (21_797_672, lambda: resnet_formula("basic", (3, 4, 6, 3)), tvm.resnet34, None),
    "resnet50": (25_557_032, lambda: resnet_formula("bottleneck", (3, 4, 6, 3)), tvm.resnet50, None),
    "googlenet": (6_624_904, googlenet_formula, googlenet_reference, 32),
}


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_parameter_counts(name):
    published, formula, torchvision_builder, summary_size = FULL[name]
    model = ours(name)
    assert get_entry(name).input_shape == (3, 224, 224)
    assert formula() == published
    assert num_params(model) == published
    if torchvision_builder is not None:
        assert num_params(reference(torchvision_builder)) == published
    if summary_size:  # one forward (small images keep it fast; the counts do not depend on the size)
        s = summarize(model, (3, summary_size, summary_size))
        assert s.total_params == published
        assert s.rows[-1].output_shape == (1000,)
        assert sum(r.params for r in s.rows) == published


def copy_weights(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Same layers in the same order: the state dicts line up entry by entry."""
    src, dst = source.state_dict(), target.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    target.load_state_dict(dict(zip(dst.keys(), src.values())))


@pytest.mark.parametrize("name,builder,size", [
    ("alexnet_full", tvm.alexnet, 64),
    ("vgg16", tvm.vgg16, 32),
    ("resnet18", tvm.resnet18, 64),
    ("resnet50", tvm.resnet50, 32),
    ("googlenet", googlenet_reference, 32),
])
def test_same_function_as_torchvision(name, builder, size):
    """torchvision's weights copied into ours give the same logits (small inputs keep it fast; the adaptive
    and global pools make the heads size-independent)."""
    source, model = reference(builder), ours(name)
    copy_weights(source, model)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = source(x), model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_zfnet_full_map_sizes():
    """Zeiler & Fergus Fig. 3: 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6."""
    model = build_model("zfnet_full")
    shape, sizes = (3, 224, 224), []
    for unit in model.features:
        shape = unit.output_shape(shape)
        if type(unit).__name__ in ("ConvPool2d", "Pool2d"):
            sizes.append(shape[-1])
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]
    assert shape == (256, 6, 6)


# ------------------------------------------------------------------------------ small variants
SMALL = {  # name: (receptive field size, stride) of the last feature unit along the width, by hand
    # 5 | pool3/2: 7 /2 | 5: 7+4*2=15 | pool: 15+2*2=19 /4 | 3,3,3: 27, 35, 43 | pool: 43+2*4=51 /8
    "alexnet": (51, 8),
    # 3 | pool3/2: 5 /2 | 3: 9 | pool: 13 /4 | 3,3,3: 21, 29, 37 | pool: 37+2*4=45 /8
    "zfnet": (45, 8),
    # 3, 5 | pool2: 6 /2 | 10, 14 | pool2: 16 /4 | 24, 32 | pool2: 36 /8
    "vgg_small": (36, 8),
    # stem 3 | inception (widest: 1x1 then 5x5): 7, 11 | pool3/2: 13 /2 | +4*2: 21 | pool: 25 /4 | +4*4: 41
    "googlenet_small": (41, 4),
    # stem 3 | 3 blocks x two 3x3: 15 | 3x3/2: 17 /2, 21 | two blocks: 37 | 3x3/2: 41 /4, 49 | two blocks: 81
    "resnet_small": (81, 4),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_variant_shapes_and_receptive_field(name):
    entry = get_entry(name)
    model = build_model(name).eval()
    assert entry.task == "image" and entry.input_shape in ((3, 32, 32), (1, 28, 28))
    with torch.no_grad():
        assert model(torch.randn((4,) + entry.input_shape)).shape == (4, 10)
    s = summarize(model, entry.input_shape)
    assert s.total_params == num_params(model) < 1_000_000
    feature_rows = [r for r in s.rows if r.field is not None]
    assert feature_rows[-1].output_shape == model.features.output_shape(entry.input_shape)
    field = SF.receptive_field(model.features.geometry())
    assert (field.size, field.stride) == SMALL[name]
    assert (feature_rows[-1].field.size, feature_rows[-1].field.stride) == SMALL[name]
    assert build_model({"name": name, "num_classes": 7, "in_channels": 1})(torch.zeros(1, 1, 32, 32)).shape == (1, 7)


def test_small_variant_learns():
    """A few Adam steps on one fixed batch drive the training loss down."""
    torch.manual_seed(0)
    model = build_model({"name": "resnet_small", "depth": 8})
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_resnet_small_depth_formula():
    """ResNet-20 for CIFAR with 1x1 projection shortcuts: counted from the 6n+2 layout."""
    n, total, channels = 3, conv_bn(3, 16, 3), 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            total += conv_bn(channels, width, 3) + conv_bn(width, width, 3)
            if stage and not i:
                total += conv_bn(channels, width, 1)
            channels = width
    assert num_params(build_model("resnet_small")) == total + lin(64, 10) == 272_474


# --------------------------------------------------------------------------------- spatial units
@pytest.mark.parametrize("n,k,s,p,ceil", [(112, 3, 2, 0, True), (112, 3, 2, 1, False), (14, 2, 2, 0, True),
                                          (13, 3, 2, 0, True), (7, 3, 1, 1, True), (9, 3, 3, 1, True),
                                          (10, 3, 2, 1, True), (5, 2, 2, 1, True)])
def test_pool_output_size_matches_torch(n, k, s, p, ceil):
    y = F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, ceil_mode=ceil)
    assert pool_output_size(n, k, s, p, ceil) == y.shape[-1]
    assert Pool2d("max", k, s, p, ceil).output_shape((1, n, n)) == tuple(y.shape[1:])


def test_padding_units_and_global_pool():
    x = torch.randn(2, 3, 9, 9)
    padded = ZeroPad2d(2)(x)
    torch.testing.assert_close(padded, F.pad(x, (2, 2, 2, 2)))
    assert SF.receptive_field(ZeroPad2d(2).geometry()).offset == -2
    kinds = [[type(u).__name__ for u in padded_conv2d(3, 4, k, p)] for k, p in [(3, 0), (3, 1), (11, 2)]]
    assert kinds == [["ConvPool2d"], ["ConvPool2d"], ["ZeroPad2d", "ConvPool2d"]]
    assert padded_conv2d(3, 4, 3, 1)[0].padding == ("same", "same")
    torch.testing.assert_close(GlobalAvgPool()(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(Pool2d("avg", 3, 2, 1)(x), F.avg_pool2d(x, 3, 2, 1))
