"""Neocognitron: Hebbian winner-take-all against hand-computed numbers, S-/C-cell formulas, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechconv.errors import ConfigError
from speechconv.models import build_model
from speechconv.summary import summarize
from speechconv.vision.blocks.hebbian import extract_patches, hebbian_wta_update, winner_mask
from speechconv.vision.blocks.neocognitron import CLayer, SLayer
from speechconv.vision.models.neocognitron import Neocognitron

# Input 3x3, kernel 2x2 'valid' -> 2x2 positions. Patches (row-major kernel order):
#   (0,0): [1,0,0,1]   (0,1): [0,2,1,0]   (1,0): [0,1,3,0]   (1,1): [1,0,0,1]
X = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0]]).view(1, 1, 3, 3)
# Responses of two planes. Across planes: (0,0) plane 1 (6 > 5), (0,1) plane 0 (1 > 0), (1,0) nobody (0, 0),
# (1,1) plane 1 (2 > 0). Plane 0's only candidate is (0,1) -- its own maximum 5 at (0,0) lost to plane 1.
# Plane 1's candidates are (0,0)=6 and (1,1)=2: it keeps one winner, (0,0).
Y = torch.tensor([[[5.0, 1.0], [0.0, 0.0]], [[6.0, 0.0], [0.0, 2.0]]]).view(1, 2, 2, 2)
W = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).view(2, 1, 2, 2)


def test_patches_by_hand():
    p = extract_patches(X, 2)
    assert p.shape == (1, 4, 2, 2)
    assert p[0, :, 0, 0].tolist() == [1, 0, 0, 1]
    assert p[0, :, 0, 1].tolist() == [0, 2, 1, 0]
    assert p[0, :, 1, 0].tolist() == [0, 1, 3, 0]
    assert p[0, :, 1, 1].tolist() == [1, 0, 0, 1]


def test_winner_mask_by_hand():
    expected = torch.tensor([[[False, True], [False, False]], [[True, False], [False, False]]])
    assert torch.equal(winner_mask(Y)[0], expected)


def test_hebbian_step_by_hand():
    lr = 0.5
    raw = hebbian_wta_update(extract_patches(X, 2), Y, W, lr, normalize=False)
    # plane 0: w + 0.5 * y(0,1)=1 * [0,2,1,0] = [1,1,0.5,0]; plane 1: w + 0.5 * 6 * [1,0,0,1] = [3,0,0,4]
    assert raw.view(2, 4).tolist() == [[1.0, 1.0, 0.5, 0.0], [3.0, 0.0, 0.0, 4.0]]
    new = hebbian_wta_update(extract_patches(X, 2), Y, W, lr)
    assert new.shape == W.shape
    # norms 1.5 and 5: [2/3, 2/3, 1/3, 0] and [0.6, 0, 0, 0.8]
    torch.testing.assert_close(new.view(2, 4), torch.tensor([[2 / 3, 2 / 3, 1 / 3, 0.0], [0.6, 0.0, 0.0, 0.8]]))


def test_only_winners_update_and_losing_plane_keeps_weights():
    # A third plane that never is the maximum across planes keeps its weights exactly.
    y = torch.cat([Y, 0.5 * Y[:, 1:]], dim=1)  # plane 2 is always below plane 1
    w = torch.cat([W, torch.tensor([0.3, 0.1, 0.2, 0.4]).view(1, 1, 2, 2)])
    new = hebbian_wta_update(extract_patches(X, 2), y, w, 0.5, normalize=False)
    assert torch.equal(new[2], w[2])
    # Changing responses anywhere except at the winners leaves the update unchanged (plane 1's (1,1)=2 loses
    # within the plane, position (1,0) has no candidate).
    y2 = y.clone()
    y2[0, 1, 1, 1] = 3.0
    y2[0, 0, 1, 0] = 0.0
    torch.testing.assert_close(hebbian_wta_update(extract_patches(X, 2), y2, w, 0.5, normalize=False), new)
    # Each plane moves only along its single winning patch: delta = lr * y * x.
    delta = (new - w).view(3, 4)
    torch.testing.assert_close(delta[0], 0.5 * 1.0 * torch.tensor([0.0, 2, 1, 0]))
    torch.testing.assert_close(delta[1], 0.5 * 6.0 * torch.tensor([1.0, 0, 0, 1]))


def test_batch_updates_sum_over_images():
    x = torch.cat([X, X.flip(-1)])
    y = torch.cat([Y, Y.flip(-1)])
    both = hebbian_wta_update(extract_patches(x, 2), y, W, 0.1, normalize=False)
    first = hebbian_wta_update(extract_patches(X, 2), Y, W, 0.1, normalize=False)
    second = hebbian_wta_update(extract_patches(X.flip(-1), 2), Y.flip(-1), W, 0.1, normalize=False)
    torch.testing.assert_close(both - W, (first - W) + (second - W))


def test_weight_sharing_update_is_shift_invariant():
    torch.manual_seed(0)
    layer = SLayer(1, 3, 3, selectivity=0.3, padding="valid")
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 2:5, 3:6] = torch.rand(3, 3) + 0.1
    shifted = torch.roll(x, shifts=(4, 5), dims=(2, 3))
    before = layer.weight.clone()
    layer.hebbian_step(x, 0.2)
    after_x = layer.weight.clone()
    layer.weight.copy_(before)
    layer.hebbian_step(shifted, 0.2)
    torch.testing.assert_close(layer.weight, after_x)


def test_s_cell_formula():
    torch.manual_seed(1)
    theta = 0.4
    layer = SLayer(2, 4, 3, selectivity=theta, padding="same")
    x = torch.rand(2, 2, 7, 7)
    y = layer(x)
    patches = F.unfold(F.pad(x, (1, 1, 1, 1)), 3).view(2, 18, 7, 7)
    w = layer.weight.view(4, 18)
    dot = torch.einsum("pd,bdhw->bphw", w, patches)
    norm_x = patches.norm(dim=1, keepdim=True)
    expected = torch.relu(dot - theta * w.norm(dim=1).view(1, 4, 1, 1) * norm_x) / (1 - theta)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    # unit-norm kernels: a patch equal to a kernel gives cos = 1 -> response ||x||; orthogonal patches none
    assert torch.allclose(w.norm(dim=1), torch.ones(4))


def test_s_cell_fires_only_above_selectivity():
    layer = SLayer(1, 1, 2, selectivity=0.8, padding="valid")
    layer.weight.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2) / math.sqrt(2))
    match = torch.tensor([[2.0, 2.0], [0.0, 0.0]]).view(1, 1, 2, 2)  # cos = 1
    partial = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2)  # cos = 0.5 < 0.8
    assert layer(match).item() == pytest.approx(math.sqrt(8))  # (||x|| - 0.8 ||x||) / 0.2
    assert layer(partial).item() == 0.0


def test_c_cells_are_fixed_max_minus_inhibition():
    layer = CLayer(3, pool_size=2, inhibition=0.3)
    x = torch.randn(2, 3, 6, 6)
    y = layer(x)
    torch.testing.assert_close(y, torch.relu(F.max_pool2d(x, 2) - 0.3))
    assert list(layer.parameters()) == []  # constants are buffers: nothing to train
    assert {"conv.weight", "conv.bias"} <= set(layer.state_dict())


def test_model_shapes_registry_and_summary():
    model = build_model("neocognitron")
    assert isinstance(model, Neocognitron)
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    s = summarize(model, (1, 28, 28))
    kinds = [r.kind for r in s.rows]
    assert kinds == ["SLayer", "CLayer", "SLayer", "CLayer", "Dense"]
    assert s.rows[3].output_shape == (32, 7, 7)
    # parameters: S1 16*25, S2 32*16*25 (no bias), read-out 1568*10+10; C-layers have none
    assert s.total_params == 16 * 25 + 32 * 16 * 25 + 32 * 7 * 7 * 10 + 10
    # receptive field along width: 5 | pool 2 -> 6 /2 | 5x5: 6 + 4*2 = 14 | pool 2: 14 + 2 = 16 /4
    assert (s.rows[3].field.size, s.rows[3].field.stride) == (16, 4)
    with pytest.raises(ConfigError):
        Neocognitron(planes=(4, 8), kernels=(5,))


def test_hebbian_learning_finds_distinct_features():
    """Competitive learning: two nearly equal planes, noisy images of a horizontal or a vertical bar.
    Each image covers the kernel exactly (one position), so one plane learns from it; the planes split
    the two bars between them."""
    g = torch.Generator().manual_seed(0)
    horizontal = torch.zeros(3, 3)
    horizontal[1] = 1.0
    bars = torch.stack([horizontal, horizontal.T])
    labels = torch.arange(200) % 2
    images = (bars[labels] + 0.1 * torch.rand(200, 3, 3, generator=g)).unsqueeze(1)
    layer = SLayer(1, 2, 3, selectivity=0.3, padding="valid")
    start = torch.full((2, 1, 3, 3), 1.0) + 0.01 * torch.randn(2, 1, 3, 3, generator=g)
    layer.weight.copy_(start / start.flatten(1).norm(dim=1).view(2, 1, 1, 1))
    wins = torch.zeros(2)
    for batch in images.split(5):
        wins += layer.hebbian_step(batch, 0.1)
    assert (wins > 0).all()
    cos = F.normalize(bars.flatten(1), dim=1) @ layer.weight.flatten(1).T  # (bar, plane)
    assert cos.max(dim=1).values.min() > 0.9  # both bars are learned
    assert cos.argmax(dim=1).unique().numel() == 2  # by different planes
    # after learning, each plane responds to its own bar only
    responses = layer(bars.unsqueeze(1)).flatten(1)  # (bar, plane)
    assert responses.argmax(dim=1).tolist() == cos.argmax(dim=1).tolist()


def test_fit_hebbian_seeds_and_updates_every_plane():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 12, 12) * (torch.rand(64, 1, 12, 12) > 0.7)
    model = Neocognitron(planes=(4, 6), kernels=(3, 3), selectivity=(0.2, 0.2), pools=(2, 2),
                         inhibition=(0.0, 0.0), image_size=12)
    wins = model.fit_hebbian(images, epochs=1, batch_size=16, lr=0.05, generator=g)
    assert [len(w) for w in wins] == [4, 6]
    assert all((w > 0).all() for w in wins)
    for layer in model.s_layers():  # bounded: every kernel keeps unit norm
        torch.testing.assert_close(layer.weight.flatten(1).norm(dim=1), torch.ones(layer.planes))
