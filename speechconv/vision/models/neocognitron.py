"""Neocognitron (Fukushima 1980) with a supervised read-out.

Learned S-layers and fixed C-layers alternate (S1 C1 S2 C2 ...). The S-planes are learned layer by layer
without labels by Hebbian winner-take-all (:func:`~speechconv.vision.blocks.hebbian.hebbian_wta_update`); the
C-planes pool with a max and an inhibitory bias and never change. On top, a linear classifier on the top
C-layer ("supervised neocognitron") is trained with gradients on frozen features
(``recipes/neocognitron/train.py``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from speechconv.blocks import Dense, StreamingSequential
from speechconv.errors import ConfigError
from speechconv.models.registry import register_model
from speechconv.vision.blocks.neocognitron import CLayer, SLayer
from speechconv.vision.models.image_base import ImageModel


class Neocognitron(ImageModel):
    """``len(planes)`` S/C stages on (in_channels, image_size, image_size) images, then a linear read-out.

    Per stage i: ``planes[i]`` S-planes with ``kernels[i]`` x ``kernels[i]`` kernels ('same' padding) and
    selectivity ``selectivity[i]``; C-planes take the max over ``pools[i]`` x ``pools[i]`` windows
    (stride ``pools[i]``) less ``inhibition[i]``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 planes: Sequence[int] = (16, 32), kernels: Sequence[int] = (5, 5),
                 selectivity: Sequence[float] = (0.5, 0.5), pools: Sequence[int] = (2, 2),
                 inhibition: Sequence[float] = (0.0, 0.0)):
        super().__init__()
        stages = len(planes)
        if not stages or any(len(v) != stages for v in (kernels, selectivity, pools, inhibition)):
            raise ConfigError("neocognitron: planes, kernels, selectivity, pools and inhibition need one "
                              f"value per stage; got {len(planes)}, {len(kernels)}, {len(selectivity)}, "
                              f"{len(pools)}, {len(inhibition)}")
        layers = []
        channels = in_channels
        for p, k, theta, pool, beta in zip(planes, kernels, selectivity, pools, inhibition):
            layers += [SLayer(channels, p, k, theta), CLayer(p, pool, pool, beta)]
            channels = p
        self.features = StreamingSequential(*layers)
        shape = self.features.output_shape((in_channels, image_size, image_size))
        if min(shape[1:]) < 1:
            raise ConfigError(f"neocognitron: {image_size}x{image_size} images vanish after the C-layers")
        self.feature_shape = shape
        self.classifier = StreamingSequential(Dense(shape[0] * shape[1] * shape[2], num_classes, activation=None))

    def s_layers(self) -> list[SLayer]:
        return [m for m in self.features if isinstance(m, SLayer)]

    @torch.no_grad()
    def input_of(self, x: torch.Tensor, s_layer: SLayer) -> torch.Tensor:
        """What ``s_layer`` sees for images ``x``: the output of the stages below it."""
        for layer in self.features:
            if layer is s_layer:
                return x
            x = layer(x)
        raise ValueError("s_layer is not part of this model")

    @torch.no_grad()
    def features_of(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened top C-layer output, the read-out's input: (B, features)."""
        return self.features(x).flatten(1)

    @torch.no_grad()
    def fit_hebbian(self, images: torch.Tensor, epochs: int = 1, batch_size: int = 32, lr: float = 0.01,
                    seed_from_data: bool = True, generator: torch.Generator | None = None,
                    log: Callable[[str], None] | None = None) -> list[torch.Tensor]:
        """Learn the S-planes layer by layer (lower layers frozen) from ``images`` (N, C, H, W) floats.

        Returns, per S-layer, how often each plane won in the last epoch (all planes > 0 = no dead plane).
        """
        wins = []
        for index, layer in enumerate(self.s_layers()):
            if seed_from_data:
                layer.init_from_patches(self.input_of(images[:256], layer), generator)
            for epoch in range(epochs):
                counts = torch.zeros(layer.planes, dtype=torch.long)
                order = torch.randperm(len(images), generator=generator)
                for start in range(0, len(images), batch_size):
                    batch = images[order[start:start + batch_size]]
                    counts += layer.hebbian_step(self.input_of(batch, layer), lr)
                if log:
                    log(f"S{index + 1} epoch {epoch + 1}: winners per plane {counts.tolist()}")
            wins.append(counts)
        return wins


@register_model("neocognitron", "image", (1, 28, 28))
def neocognitron(**kwargs) -> Neocognitron:
    """Neocognitron (Fukushima 1980): Hebbian WTA S-planes, fixed max C-planes, linear read-out."""
    return Neocognitron(**kwargs)
