"""Seeding and sampling helpers of the augmentation ops: every draw comes from a passed generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from speechconv.errors import ConfigError


def make_generator(base_seed: int, epoch: int, index: int) -> torch.Generator:
    """Generator seeded from (base_seed, epoch, index), well mixed so nearby triples are independent."""
    state = np.random.SeedSequence([int(base_seed), int(epoch), int(index)]).generate_state(2, np.uint32)
    seed = (int(state[0]) << 31) ^ int(state[1])  # 63 bits: always a valid manual_seed
    return torch.Generator().manual_seed(seed)


def _uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator | None, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (1,), generator=generator))


def _range(value: float | Sequence[float], name: str, positive: bool = False) -> tuple[float, float]:
    """A ``(lo, hi)`` range; a single number means that fixed value."""
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        if len(value) != 2:
            raise ConfigError(f"{name} must be a number or a [lo, hi] pair, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
    if hi < lo or (positive and lo <= 0):
        raise ConfigError(f"{name} must satisfy {'0 < ' if positive else ''}lo <= hi, got {value!r}")
    return lo, hi
