"""The front-ends of an ensemble's members on one shared mel power spectrogram.

Members of an ensemble (several detectors trained with different seeds, see
:mod:`speechconv.models.ensemble`) may have learnt their own front-end parameters (PCEN's gain, bias,
root and smoother per channel). :class:`EnsembleFrontend` computes the mel power once and each member's
features from it (each with its own streaming state under ``"<i>."`` and its own normalization), and
stacks them along the feature axis: member ``i`` owns features ``[offset_i, offset_i + n_features_i)``.
The members must agree on everything that makes the mel power (sample rate, FFT, window, hop, mel bands).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from speechconv.blocks.streaming import add_prefix, sub_state
from speechconv.errors import ConfigError
from speechconv.frontends.base import SpectrogramFrontend, State

#: A small example (what ``{"name": "ensemble"}`` builds): PCEN and log-mel, 40 bands each.
DEFAULT_MEMBERS = ({"name": "pcen"}, {"name": "logmel"})
#: What the members must share: the options that make the mel power spectrogram.
SHARED = ("sample_rate", "n_fft", "win_length", "hop_length", "window", "n_mels", "fmin", "fmax")


class EnsembleFrontend(SpectrogramFrontend):
    """Stacked features of several front-ends that share one mel power spectrogram.

    Parameters
    ----------
    members:
        The members' front-end configs (``{"name": "pcen", ...}``), in the order of the ensemble's models.
    **shared:
        Spectrogram options (:data:`SHARED`) given to every member; ``normalization`` (and its global
        statistics) apply to the stacked features, after each member's own normalization.
    """

    name = "ensemble"

    def __init__(self, members: Sequence[dict[str, Any]] = DEFAULT_MEMBERS, **shared: Any) -> None:
        from speechconv.frontends import build_frontend

        own = {key: shared.pop(key) for key in ("normalization", "global_mean", "global_std") if key in shared}
        if isinstance(members, (str, bytes, dict)) or not isinstance(members, Sequence) or not members:
            raise ConfigError(f"ensemble front-end: 'members' must be a non-empty list of front-end configs, "
                              f"got {members!r}")
        built = []
        for i, config in enumerate(members):
            if isinstance(config, dict) and config.get("name") == self.name:
                raise ConfigError(f"ensemble front-end: member {i} is itself an ensemble")
            built.append(build_frontend({**config, **shared} if isinstance(config, dict) else config))
        first = built[0]
        for i, member in enumerate(built[1:], start=1):
            differ = [key for key in SHARED if getattr(member, key) != getattr(first, key)]
            if differ:
                raise ConfigError(f"ensemble front-end: member {i} differs from member 0 in {', '.join(differ)}; "
                                  "members must share their mel power spectrogram")
        super().__init__(n_features=sum(m.n_features for m in built), **{key: getattr(first, key) for key in SHARED},
                         **own)
        self.members = nn.ModuleList(built)

    @property
    def feature_sizes(self) -> list[int]:
        """Features of each member, in order (how an ensemble model splits its input)."""
        return [m.n_features for m in self.members]

    @property
    def config(self) -> dict[str, Any]:
        config = {"name": self.name, "members": [m.config for m in self.members]}
        if self.normalization is not None:  # of the stacked features (each member has its own too)
            own = super().config
            config.update({k: own[k] for k in ("normalization", "global_mean", "global_std") if k in own})
        return config

    @contextlib.contextmanager
    def fast_numerics(self, enabled: bool = True):
        with contextlib.ExitStack() as stack:
            for member in self.members:
                stack.enter_context(member.fast_numerics(enabled))
            with super().fast_numerics(enabled):
                yield self

    def stream(self, chunk: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        for i, member in enumerate(self.members):
            if not member.normalizer.streamable:
                raise ConfigError(f"ensemble front-end: member {i} normalizes whole utterances and cannot stream")
        return super().stream(chunk, state)

    def features_from_mel(self, mel: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        features, new_state = [], {}
        for i, member in enumerate(self.members):
            prefix = f"{i}."
            own, member_state = member.features_from_mel(mel, sub_state(state, prefix) or {})
            features.append(member.normalizer(own))
            new_state.update(add_prefix(member_state, prefix))
        return torch.cat(features, dim=1), new_state

    def extra_repr(self) -> str:
        return f"members={len(self.members)}, n_features={self.n_features}, frame_rate={self.frame_rate:g}"
