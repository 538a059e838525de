"""S-layers and C-layers of the neocognitron (Fukushima 1980), built on :class:`ConvPool2d`.

S-cells (feature extraction) are learned, ReLU-like, with shunting inhibition from a V-cell that measures
the input energy under the kernel::

    s_p = relu(w_p . x - theta * ||w_p|| * ||x||) / (1 - theta),    ||x|| = V-cell = sqrt(sum x^2 over the patch)

so a cell fires only when the cosine between its kernel and the input patch exceeds the selectivity
``theta``. Their kernels are learned without labels by Hebbian winner-take-all (:mod:`.hebbian`).

C-cells (tolerance to shifts) are fixed: ``c_p = relu(max over a neighbourhood of s_p - beta)``, the
maximum of a pooling window less an inhibitory bias ``beta``. Their weights are constants (buffers, not
parameters) and never trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechconv.blocks import functional as SF
from speechconv.blocks.conv import ConvPool2d
from speechconv.blocks.fft import direct_conv
from speechconv.blocks.streaming import StreamingModule
from speechconv.errors import ConfigError
from speechconv.vision.blocks.hebbian import extract_patches, hebbian_wta_update, winner_mask


class SLayer(StreamingModule):
    """``planes`` S-planes over ``in_planes`` input planes with ``kernel_size`` kernels (unit-norm)."""

    streamable = False

    def __init__(self, in_planes: int, planes: int, kernel_size: int, selectivity: float = 0.5,
                 padding: str = "same"):
        super().__init__()
        if not 0.0 <= selectivity < 1.0:
            raise ConfigError(f"S-layer selectivity must be in [0, 1), not {selectivity}")
        self.conv = ConvPool2d(in_planes, planes, kernel_size, padding=padding, bias=False, activation=None)
        self.conv.conv.weight.requires_grad_(False)  # learned by Hebbian updates, not by gradients
        self.selectivity = selectivity
        self.kernel_size = kernel_size
        with torch.no_grad():
            w = self.weight
            w.copy_(w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.conv.weight

    @property
    def planes(self) -> int:
        return self.weight.shape[0]

    def _pad(self) -> tuple[int, int, int, int]:
        (top, bottom), (left, right) = self.conv.pads
        return left, right, top, bottom

    def v_cells(self, x: torch.Tensor) -> torch.Tensor:
        """Root of the input energy under the kernel at each output position: (B, 1, H_out, W_out)."""
        energy = x.pow(2).sum(dim=1, keepdim=True)
        ones = x.new_ones(1, 1, self.kernel_size, self.kernel_size)
        return direct_conv(energy, ones, None, 1, 1, self.conv.pads).clamp_min(0).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        excitation = self.conv(x)
        kernel_norm = self.weight.flatten(1).norm(dim=1).view(1, -1, 1, 1)
        inhibition = self.selectivity * kernel_norm * self.v_cells(x)
        return F.relu(excitation - inhibition) / (1.0 - self.selectivity)

    def geometry(self) -> list[SF.AxisGeometry]:
        return self.conv.geometry()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.conv.output_shape(in_shape)

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        out = self.conv.conv_output_shape(in_shape[1:])
        return self.conv.count_macs(in_shape) + SF.conv_macs(in_shape[0], 1, self.kernel_size, out)

    # --- unsupervised learning ---------------------------------------------------------------
    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return extract_patches(x, self.kernel_size, self._pad())

    @torch.no_grad()
    def hebbian_step(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        """One winner-take-all Hebbian update from a batch; returns the winners per plane, (planes,)."""
        responses = self(x)
        new = hebbian_wta_update(self.patches(x), responses, self.weight, lr)
        self.weight.copy_(new)
        return winner_mask(responses).sum(dim=(0, 2, 3))

    @torch.no_grad()
    def init_from_patches(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Seed each plane with a different input patch of high energy (no plane starts dead)."""
        cols = self.patches(x).permute(0, 2, 3, 1).reshape(-1, self.weight[0].numel())
        norms = cols.norm(dim=1)
        strong = torch.nonzero(norms >= 0.5 * norms.max()).flatten()
        if len(strong) < self.planes:
            raise ConfigError(f"only {len(strong)} non-blank patches to seed {self.planes} S-planes; "
                              "pass more images")
        pick = strong[torch.randperm(len(strong), generator=generator)[: self.planes]]
        seeds = cols[pick] / norms[pick, None]
        self.weight.copy_(seeds.reshape(self.weight.shape))


class CLayer(ConvPool2d):
    """Fixed C-cells: ``relu(maxpool(x) - inhibition)`` per plane, as a depthwise 1x1 conv-pool block with
    constant weight 1 and bias ``-inhibition`` (relu is monotone, so it commutes with the max)."""

    streamable = False

    def __init__(self, planes: int, pool_size: int = 2, pool_stride: int | None = None, inhibition: float = 0.0):
        super().__init__(planes, planes, 1, padding="valid", groups=planes, bias=True, activation="relu",
                         pool="max", pool_size=pool_size, pool_stride=pool_stride)
        self.inhibition = inhibition
        weight = torch.ones_like(self.conv.weight)
        bias = torch.full_like(self.conv.bias, -inhibition)
        del self.conv.weight, self.conv.bias  # constants, not parameters
        self.conv.register_buffer("weight", weight)
        self.conv.register_buffer("bias", bias)
