"""The seed's image augmentation preset: distributions, exact warps, and torchvision conventions."""

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from speechconv.vision.augment import RandomAffineWarp, affine_matrix, warp_affine

IDENTITY = {
    "rotation_deg": 0.0,
    "translate_px": (0.0, 0.0),
    "scale": 1.0,
    "flip": False,
    "shear_deg": 0.0,
    "stretch": 1.0,
}
N_DRAWS = 2000


@pytest.fixture(scope="module")
def draws():
    aug = RandomAffineWarp()
    g = torch.Generator().manual_seed(0)
    return [aug.sample_params(g) for _ in range(N_DRAWS)]


def column(draws, key, index=None):
    values = [d[key] if index is None else d[key][index] for d in draws]
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def test_uniform_params_stay_in_range_and_cover_it(draws):
    for values, lo, hi in [
        (column(draws, "rotation_deg"), 0.0, 360.0),
        (column(draws, "translate_px", 0), -10.0, 10.0),
        (column(draws, "translate_px", 1), -10.0, 10.0),
        (column(draws, "shear_deg"), -20.0, 20.0),
    ]:
        span = hi - lo
        assert lo <= values.min() and values.max() <= hi
        assert values.min() < lo + 0.01 * span and values.max() > hi - 0.01 * span
        # uniform: mean (lo + hi) / 2 and variance span^2 / 12, within a few standard errors
        assert abs(values.mean() - (lo + hi) / 2) < 4 * span / math.sqrt(12 * N_DRAWS)
        assert values.var() == pytest.approx(span**2 / 12, rel=0.1)


@pytest.mark.parametrize("key,bound", [("scale", 1.6), ("stretch", 1.3)])
def test_log_uniform_params(draws, key, bound):
    values = column(draws, key)
    logs = values.log()
    span = 2 * math.log(bound)
    assert 1 / bound <= values.min() and values.max() <= bound
    assert values.min() < (1 / bound) * 1.02 and values.max() > bound / 1.02
    assert abs(logs.mean()) < 4 * span / math.sqrt(12 * N_DRAWS)  # log-mean 0
    assert logs.var() == pytest.approx(span**2 / 12, rel=0.1)  # uniform in the log domain
    # as many draws below 1 as above 1 (a plain uniform draw would be biased above 1)
    assert abs(float((values < 1).double().mean()) - 0.5) < 0.05


def test_flip_rate(draws):
    flips = torch.tensor([d["flip"] for d in draws], dtype=torch.float64)
    assert abs(float(flips.mean()) - 0.5) < 4 * 0.5 / math.sqrt(N_DRAWS)


def test_identity_params_give_identity():
    aug = RandomAffineWarp()
    img = torch.rand(3, 21, 34)
    assert torch.allclose(aug(img, params=IDENTITY), img, atol=1e-5)
    gray = torch.rand(16, 16)
    assert torch.allclose(aug(gray, params=IDENTITY), gray, atol=1e-5)


def test_matches_torchvision_affine_without_stretch_and_flip():
    img = torch.rand(3, 31, 40)
    params = dict(IDENTITY, rotation_deg=37.0, translate_px=(3.5, -2.25), scale=1.2, shear_deg=12.0)
    ours = RandomAffineWarp()(img, params=params)
    ref = TF.affine(
        img,
        angle=37.0,
        translate=[3.5, -2.25],
        scale=1.2,
        shear=[12.0, 0.0],
        interpolation=TF.InterpolationMode.BILINEAR,
    )
    assert torch.allclose(ours, ref, atol=1e-4)


def test_exact_pixel_warps():
    aug = RandomAffineWarp()
    img = torch.rand(2, 12, 12)
    assert torch.allclose(aug(img, params=dict(IDENTITY, flip=True)), img.flip(-1), atol=1e-5)
    # rotation is clockwise on screen (y points down), as in torchvision's affine
    rotated = aug(img, params=dict(IDENTITY, rotation_deg=90.0))
    assert torch.allclose(rotated, torch.rot90(img, k=-1, dims=(-2, -1)), atol=1e-5)
    shifted = aug(img, params=dict(IDENTITY, translate_px=(2.0, -3.0)))
    assert torch.allclose(shifted[:, :9, 2:], img[:, 3:, :10], atol=1e-5)
    assert shifted[:, :, :2].abs().max() == 0 and shifted[:, 9:].abs().max() == 0


def test_stretch_scales_second_moments():
    # A small Gaussian blob: after stretch s its x-variance grows by s and y-variance shrinks by s.
    n = 65
    coords = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    blob = torch.exp(-(xx**2 + yy**2) / (2 * 5.0**2))

    def moments(img):
        w = img / img.sum()
        return float((w * xx**2).sum()), float((w * yy**2).sum())

    vx, vy = moments(blob)
    out = RandomAffineWarp()(blob, params=dict(IDENTITY, stretch=1.3))
    sx, sy = moments(out)
    # bilinear interpolation adds 1/6 px^2 of blur; compare with it taken into account
    assert sx == pytest.approx(vx * 1.3 + 1 / 6, rel=0.02)
    assert sy == pytest.approx(vy / 1.3 + 1 / 6, rel=0.02)


def test_affine_matrix_composition():
    m = affine_matrix(
        rotation_deg=30.0, translate_px=(1.0, 2.0), scale=1.5, flip=True, shear_deg=10.0, stretch=1.2
    )
    a = math.radians(30.0)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    shear = torch.tensor([[1.0, -math.tan(math.radians(10.0))], [0.0, 1.0]], dtype=torch.float64)
    lin = rot @ shear @ torch.diag(torch.tensor([1.5 * 1.2**0.5, 1.5 / 1.2**0.5], dtype=torch.float64))
    lin = lin @ torch.diag(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(m[:2, :2], lin)
    assert m[:2, 2].tolist() == [1.0, 2.0]
    # determinant: scale^2, sign flipped by the mirror; stretch and shear preserve area
    assert float(torch.linalg.det(m)) == pytest.approx(-(1.5**2))


def test_seeded_and_batched_calls():
    aug = RandomAffineWarp()
    img = torch.rand(3, 24, 24)
    a = aug(img, torch.Generator().manual_seed(4))
    b = aug(img, torch.Generator().manual_seed(4))
    c = aug(img, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    batch = torch.rand(2, 3, 24, 24)
    params = aug.sample_params(torch.Generator().manual_seed(1))
    out = aug(batch, params=params)
    assert torch.allclose(out[1], aug(batch[1], params=params), atol=1e-6)


def test_uint8_images_and_fill():
    img = torch.randint(0, 256, (1, 10, 10), dtype=torch.uint8)
    out = RandomAffineWarp()(img, params=IDENTITY)
    assert out.dtype == torch.uint8 and torch.equal(out, img)
    filled = RandomAffineWarp(fill=0.5)(
        torch.zeros(1, 10, 10), params=dict(IDENTITY, translate_px=(5.0, 0.0))
    )
    assert torch.allclose(filled[..., :5], torch.full((1, 10, 5), 0.5)) and filled[..., 5:].abs().max() == 0


def test_bad_input():
    with pytest.raises(ValueError, match="unknown image augmentation params"):
        RandomAffineWarp()(torch.rand(4, 4), params={"angle": 3.0})
    with pytest.raises(ValueError, match="image tensor"):
        warp_affine(torch.rand(4), torch.eye(3))
