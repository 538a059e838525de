"""Inference-time folding of batch norm into the preceding convolution of conv-pool blocks."""

from __future__ import annotations

import torch
from torch import nn

from speechconv.blocks.conv import _ConvPoolNd


@torch.no_grad()
def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm of a :class:`ConvPool1d`/:class:`ConvPool2d` into its convolution.

    ``bn(conv(x)) = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is a convolution with scaled weights
    and a new bias, so the folded block computes the same numbers with one operation less. Works in place
    and returns ``model``; call it on a model in eval mode (training needs the batch statistics).
    """
    for block in model.modules():
        if not isinstance(block, _ConvPoolNd):
            continue
        norm = block.norm
        if not isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d)) or norm.training:
            continue
        conv = block.conv
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps) if norm.affine else \
            1.0 / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        folded = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, bias=True).to(conv.weight)
        folded.weight.copy_(conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        folded.bias.copy_((bias - norm.running_mean) * scale + shift)
        block.conv = folded
        block.norm = nn.Identity()
    return model
