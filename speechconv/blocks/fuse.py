"""Inference-time folding of batch norm into the preceding convolution of conv-pool blocks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from speechconv.blocks.conv import _ConvPoolNd


@torch.no_grad()
def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm of a :class:`ConvPool1d`/:class:`ConvPool2d` into its convolution.

    ``bn(conv(x)) = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is a convolution with scaled weights
    and a new bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``), so the folded block computes the same
    numbers with one operation less. Works in place and returns ``model``; call it on a model in eval mode
    (training needs the batch statistics). A folded model no longer matches its config (which names the
    batch norms), so the inference engine and export fold a copy, explicitly; saved models keep them.
    """
    for block in model.modules():
        if not isinstance(block, _ConvPoolNd):
            continue
        norm = block.norm
        if not isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d)) or norm.training:
            continue
        block.conv = fuse_conv_bn_eval(block.conv.eval(), norm)
        block.norm = nn.Identity()
    return model
