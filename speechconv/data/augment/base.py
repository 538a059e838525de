"""The augmentation op protocol (:class:`WaveAugment`) and chains of ops (:class:`Compose`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from speechconv.data.augment.dsp import _check_wave
from speechconv.errors import ConfigError


class WaveAugment:
    """Base: flip a ``p`` coin, then ``apply(wave, **sample_params(generator, wave))``."""

    name: ClassVar[str] = ""

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)

    def sample_params(self, generator: torch.Generator | None, wave: Tensor) -> dict[str, Any]:
        return {}

    def apply(self, wave: Tensor, **params: Any) -> Tensor:
        raise NotImplementedError

    def __call__(self, wave: Tensor, generator: torch.Generator | None = None) -> Tensor:
        wave = _check_wave(wave, type(self).__name__)
        # The coin is drawn even for p = 1, so the stream layout does not depend on the value of p.
        if float(torch.rand((), generator=generator)) >= self.p:
            return wave
        return self.apply(wave, **self.sample_params(generator, wave))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose:
    """Apply ops in order, all drawing from the same generator."""

    def __init__(self, ops: Sequence[Callable[[Tensor, torch.Generator | None], Tensor]]) -> None:
        self.ops = list(ops)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(op) for op in self.ops) + "])"
