"""Unsupervised Hebbian winner-take-all learning of shared convolution kernels (Fukushima 1980).

For one image, S-cell responses ``y`` have shape (planes, H, W). Learning picks the winners:

1. at each position only the plane with the largest response is a candidate (and only if it responds);
2. each plane keeps at most one winner: its largest candidate over all positions.

A winning cell reinforces its plane's kernel with the input patch it saw, ``dw = lr * x * y``; the kernel
is shared by every cell of the plane, so one update moves the whole plane. Updated kernels are scaled back
to unit L2 norm so weights stay bounded. For a batch, the updates of all images are summed before the
normalisation.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def extract_patches(x: torch.Tensor, kernel_size: int | Sequence[int], padding: Sequence[int] = (0, 0, 0, 0),
                    stride: int | Sequence[int] = 1) -> torch.Tensor:
    """Input patch under every output position: (B, C, H, W) -> (B, C * kh * kw, H_out, W_out).

    ``padding`` is (left, right, top, bottom) zeros as in ``F.pad``; patch entries are ordered like the
    flattened kernel ``weight[p].reshape(-1)`` (channel, row, column).
    """
    if any(padding):
        x = F.pad(x, tuple(padding))
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    cols = F.unfold(x, kernel, stride=stride)
    out_h = (x.shape[2] - kernel[0]) // stride[0] + 1
    out_w = (x.shape[3] - kernel[1]) // stride[1] + 1
    return cols.reshape(x.shape[0], cols.shape[1], out_h, out_w)


def winners(responses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each plane's winner per image: flat position (B, P) in the H*W map, and whether there is one (B, P).

    Ties across planes go to the lower plane index, ties within a plane to the first position (row-major).
    """
    batch, planes = responses.shape[:2]
    best_plane = responses.argmax(dim=1, keepdim=True)
    plane_ids = torch.arange(planes, device=responses.device).view(1, planes, *([1] * (responses.dim() - 2)))
    candidate = ((plane_ids == best_plane) & (responses > 0)).reshape(batch, planes, -1)
    flat = responses.reshape(batch, planes, -1)
    scores = torch.where(candidate, flat, torch.full_like(flat, -torch.inf))
    return scores.argmax(dim=2), candidate.any(dim=2)


def winner_mask(responses: torch.Tensor) -> torch.Tensor:
    """Boolean (B, P, H, W): True at each plane's single winner in each image (see the module docstring)."""
    position, has_winner = winners(responses)
    mask = torch.zeros(responses.shape[:2] + (responses[0, 0].numel(),), dtype=torch.bool,
                       device=responses.device)
    mask.scatter_(2, position.unsqueeze(2), has_winner.unsqueeze(2))
    return mask.reshape(responses.shape)


def hebbian_wta_update(patches: torch.Tensor, responses: torch.Tensor, weights: torch.Tensor, lr: float,
                       normalize: bool = True) -> torch.Tensor:
    """One Hebbian winner-take-all step; returns new weights of the shape of ``weights``.

    patches: (B, D, H, W) input patches under each output position (:func:`extract_patches`);
    responses: (B, P, H, W) S-cell outputs; weights: (P, ...) with D elements per plane.
    ``w_p <- w_p + lr * sum_images y_p(win) * x(win)``, then, if ``normalize``, ``w_p / ||w_p||`` for every
    plane that had a winner; planes without a winner keep their weights exactly.
    """
    batch, planes = responses.shape[:2]
    if weights.shape[0] != planes or patches.shape[0] != batch or patches.shape[2:] != responses.shape[2:]:
        raise ValueError(f"patches {tuple(patches.shape)}, responses {tuple(responses.shape)} and weights "
                         f"{tuple(weights.shape)} do not line up")
    flat = weights.reshape(planes, -1)
    if patches.shape[1] != flat.shape[1]:
        raise ValueError(f"patch size {patches.shape[1]} differs from kernel size {flat.shape[1]}")
    position, has_winner = winners(responses)
    gain = responses.reshape(batch, planes, -1).gather(2, position.unsqueeze(2)).squeeze(2) * has_winner
    cols = patches.reshape(batch, patches.shape[1], -1)
    won = cols.gather(2, position.unsqueeze(1).expand(-1, cols.shape[1], -1))  # (B, D, P)
    new = flat + lr * torch.einsum("bp,bdp->pd", gain, won)
    if normalize:
        updated = has_winner.any(dim=0)
        norms = new.norm(dim=1, keepdim=True).clamp_min(1e-12)
        new = torch.where(updated[:, None], new / norms, flat)
    return new.reshape(weights.shape)
