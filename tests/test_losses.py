"""Keyword-spotting losses against hand-computed values and a loop reference (wekws formulation)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from speechconv.training.confusion import confusion_matrix
from speechconv.training.losses import clip_logits, frame_cross_entropy, frame_targets, max_pool_loss


def _logits_from_posteriors(p: list[list[list[float]]]) -> torch.Tensor:
    """(B, C, T) posteriors -> logits whose softmax over C gives them back."""
    return torch.tensor(p, dtype=torch.float64).log()


def test_max_pool_loss_hand_example():
    # clip 0: keyword (label 1), keyword posterior over time 0.2, 0.9, 0.5 -> trained on the 0.9 frame
    # clip 1: background (label 0), background posterior 0.7, 0.4, 0.95 -> trained on the 0.4 frame
    logits = _logits_from_posteriors([
        [[0.8, 0.1, 0.5], [0.2, 0.9, 0.5]],
        [[0.7, 0.4, 0.95], [0.3, 0.6, 0.05]],
    ])
    labels = torch.tensor([1, 0])
    loss = max_pool_loss(logits, labels, background=[0])
    assert math.isclose(loss.item(), (-math.log(0.9) - math.log(0.4)) / 2, rel_tol=1e-12)


def _wekws_reference(logits, labels, background):
    """Loop version: keyword clips -log(max_t p[label, t]); background clips -log(min_t p[label, t])."""
    probs = logits.softmax(dim=1)
    total = 0.0
    for b in range(len(labels)):
        p = probs[b, labels[b]]
        total += -torch.log(p.min() if int(labels[b]) in background else p.max())
    return total / len(labels)


def test_max_pool_loss_matches_loop_reference_and_gradients_flow():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 9, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 2])
    loss = max_pool_loss(logits, labels, background=[0, 3])
    torch.testing.assert_close(loss, _wekws_reference(logits, labels, {0, 3}))
    loss.backward()
    # Each clip's gradient touches exactly one frame: the selected one.
    touched = (logits.grad.abs().sum(dim=1) > 0).sum(dim=1)
    assert touched.tolist() == [1] * 6


def test_two_class_max_pool_equals_wekws_sigmoid_form():
    # With one keyword, softmax p_k plays the role of wekws' sigmoid output: background clips get
    # -log min_t (1 - p_k(t)) = -log min_t p_bg(t).
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 2, 7, generator=g, dtype=torch.float64)
    labels = torch.tensor([1, 0, 0, 1])
    pk = logits.softmax(dim=1)[:, 1]
    expected = torch.stack([-torch.log(pk[b].max()) if labels[b] == 1 else -torch.log((1 - pk[b]).min())
                            for b in range(4)]).mean()
    torch.testing.assert_close(max_pool_loss(logits, labels, background=[0]), expected)


def test_clip_logits_pooling():
    logits = torch.tensor([[[1.0, 5.0, 2.0], [0.0, -1.0, 3.0]]], dtype=torch.float64)
    assert clip_logits(logits, "max").tolist() == [[5.0, 3.0]]
    assert clip_logits(logits, "mean").tolist() == [[8 / 3, 2 / 3]]
    assert clip_logits(logits, "last").tolist() == [[2.0, 3.0]]


def test_frame_targets_and_frame_cross_entropy():
    times = torch.tensor([0.0, 100.0, 200.0, 300.0, 400.0])
    targets = frame_targets(torch.tensor([2, 1]), torch.tensor([150.0, 0.0]), torch.tensor([310.0, 50.0]), times,
                            background=0, tolerance=0.0)
    assert targets.tolist() == [[0, 0, 2, 2, 0], [1, 0, 0, 0, 0]]
    wide = frame_targets(torch.tensor([2]), torch.tensor([150.0]), torch.tensor([310.0]), times, 0, tolerance=90.0)
    assert wide.tolist() == [[0, 2, 2, 2, 2]]
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2))
    expected = F.cross_entropy(logits.permute(0, 2, 1).reshape(-1, 3), targets.reshape(-1))
    torch.testing.assert_close(frame_cross_entropy(logits, targets), expected)


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(labels, predictions, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
