"""Ensembles: several frame classifiers on one stream, their class posteriors averaged.

Detectors trained from the same synthetic data with different seeds make different mistakes on real
voices; averaging their posteriors cancels part of them. On the real-speaker wake-word benchmark
(``recipes/wakeword_benchmark``) the mean score curve of four seeds missed 40.8% of the real keywords
at <= 1 false alarm per hour, against 44.8% for the seeds alone (mean of four keywords, every keyword
better), at four times the cost.

The output is ``log(mean_i softmax(logits_i))``: its softmax is exactly the members' mean posterior, so
a :class:`~speechconv.streaming.KeywordSpotter` treats an ensemble like any other model. Member ``i``
reads its own slice of the feature axis (see :class:`~speechconv.frontends.ensemble.EnsembleFrontend`)
and keeps its streaming state under ``"<i>."``. Members must share their frame stride and look-ahead,
so that their output frames describe the same moments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from speechconv.blocks.functional import AxisGeometry
from speechconv.blocks.streaming import State, add_prefix, sub_state
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import build_model, register_model

#: A small example (what ``build_model("ensemble")`` gives): TC-ResNet8 and TC-ResNet14 (both stride 8).
DEFAULT_MEMBERS = ({"name": "tc_resnet"}, {"name": "tc_resnet14"})


def mean_posterior_logits(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``log`` of the mean softmax (over the class axis 1) of several ``(B, C, T)`` logit tensors."""
    log_probs = torch.stack([torch.log_softmax(x, dim=1) for x in logits])
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))


class Ensemble(AudioModel):
    """Several audio models, each on its slice of the features; outputs their mean posterior (as log).

    Parameters
    ----------
    members:
        The members' model configs (``{"name": "tc_resnet", ...}``). A member config may set
        ``in_features``; the members that do not share the other features equally.
    """

    #: ``inspect`` reports each member's receptive field from its own input (they run side by side)
    parallel_branches = "members"

    def __init__(self, in_features: int = 40, num_classes: int = 2,
                 members: Sequence[dict[str, Any]] = DEFAULT_MEMBERS, name: str = "ensemble"):
        if isinstance(members, (str, bytes, dict)) or not isinstance(members, Sequence) or not members:
            raise ConfigError(f"{name}: 'members' must be a non-empty list of model configs, got {members!r}")
        sizes = [config.get("in_features") if isinstance(config, dict) else None for config in members]
        unset = sizes.count(None)
        rest = in_features - sum(size for size in sizes if size is not None)
        if unset and (rest <= 0 or rest % unset):
            raise ConfigError(f"{name}: {rest} features cannot be split equally between the {unset} members "
                              "without in_features; give each member's in_features")
        sizes = [rest // unset if size is None else size for size in sizes]
        if sum(sizes) != in_features:
            raise ConfigError(f"{name}: the members' in_features {sizes} must add up to {in_features}")
        built = []
        for i, config in enumerate(members):
            if not isinstance(config, dict) or config.get("name") in (None, name, "ensemble"):
                raise ConfigError(f"{name}: member {i} must be a model config with a name (not an ensemble), "
                                  f"got {config!r}")
            model = build_model({**config, "in_features": sizes[i], "num_classes": num_classes})
            model.config = dict(config)
            built.append(model)
        lookahead = built[0].lookahead
        stride = built[0].frame_stride
        for i, model in enumerate(built[1:], start=1):
            if model.frame_stride != stride or model.lookahead != lookahead:
                raise ConfigError(f"{name}: member {i} has frame stride {model.frame_stride} and look-ahead "
                                  f"{model.lookahead}, member 0 {stride} and {lookahead}; they must agree")
        super().__init__(in_features, num_classes, lookahead)
        self.feature_sizes = sizes
        self.members = nn.ModuleList(built)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.shape[1] != self.in_features:
            raise ValueError(f"ensemble: expected {self.in_features} features, got {x.shape[1]}")
        return torch.split(x, self.feature_sizes, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_posterior_logits([m(part) for m, part in zip(self.members, self._split(x))])

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        outputs, new_state = [], {}
        for i, (member, part) in enumerate(zip(self.members, self._split(x))):
            y, member_state = member.stream(part, sub_state(state, f"{i}."))
            outputs.append(y)
            new_state.update(add_prefix(member_state, f"{i}."))
        return mean_posterior_logits(outputs), new_state

    @property
    def streamable(self) -> bool:  # type: ignore[override]
        return all(getattr(m, "streamable", True) for m in self.members)

    def geometry(self) -> list[AxisGeometry]:
        """The widest member's: every output waits for the member that sees the most context."""
        return max(self.members, key=lambda m: m.receptive_field().size).geometry()

    def output_frames(self, n_frames: int) -> int:
        counts = {m.output_frames(n_frames) for m in self.members}
        if len(counts) != 1:
            raise ConfigError(f"ensemble members give different numbers of output frames {sorted(counts)} "
                              f"for {n_frames} input frames")
        return counts.pop()

    def macs_per_second(self, frame_rate: float) -> int:
        return sum(m.macs_per_second(frame_rate) for m in self.members)


@register_model("ensemble", "audio", (40, 100))
def ensemble(**kwargs) -> Ensemble:
    """Several models' mean class posterior (e.g. one keyword detector trained with several seeds)."""
    return Ensemble(**kwargs)
