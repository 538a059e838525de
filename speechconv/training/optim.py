"""Optimizers and learning-rate schedules built from small YAML-friendly dicts."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from speechconv.errors import ConfigError

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULERS = ("plateau", "cosine", "step", "multistep", "exponential")


def build_optimizer(params: Iterable[torch.nn.Parameter], config: dict[str, Any]) -> torch.optim.Optimizer:
    """``{"name": "sgd"|"adam"|"adamw"|"rmsprop", "lr": ..., **options}`` -> optimizer.

    Options are the torch constructor's (``momentum``, ``weight_decay``, ``nesterov``, ``betas``, ...).
    """
    options = dict(config)
    name = str(options.pop("name", "adam")).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    try:
        return OPTIMIZERS[name](params, **options)
    except TypeError as err:
        raise ConfigError(f"bad options for optimizer {name!r}: {err}") from err


def build_scheduler(optimizer: torch.optim.Optimizer, config: dict[str, Any] | None,
                    max_epochs: int | None = None, monitor: str = "val/loss") -> dict[str, Any] | None:
    """Lightning ``lr_scheduler`` dict for ``{"name": ..., **options}``, or None without a schedule.

    * ``plateau``: ReduceLROnPlateau on ``monitor`` (``factor``, ``patience``, ``min_lr``, ``mode``);
    * ``cosine``: cosine annealing over ``T_max`` epochs (default: the trainer's ``max_epochs``);
    * ``step``: ``step_size``, ``gamma``; ``multistep``: ``milestones``, ``gamma``; ``exponential``: ``gamma``.

    Every schedule steps once per epoch.
    """
    if not config or config.get("name") in (None, "none"):
        return None
    options = dict(config)
    name = str(options.pop("name")).lower()
    monitor = options.pop("monitor", monitor)
    try:
        if name == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
            return {"scheduler": scheduler, "monitor": monitor, "interval": "epoch", "frequency": 1}
        if name == "cosine":
            options.setdefault("T_max", max(1, max_epochs or 1))
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **options)
        elif name == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, **options)
        elif name == "multistep":
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, **options)
        elif name == "exponential":
            scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, **options)
        else:
            raise ConfigError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULERS)} or null")
    except TypeError as err:
        raise ConfigError(f"bad options for scheduler {name!r}: {err}") from err
    return {"scheduler": scheduler, "interval": "epoch", "frequency": 1}


def configure(module, optimizer: dict[str, Any], scheduler: dict[str, Any] | None):
    """``LightningModule.configure_optimizers`` body shared by the audio and image modules."""
    opt = build_optimizer(module.parameters(), optimizer)
    max_epochs = module.trainer.max_epochs if module._trainer is not None else None
    sched = build_scheduler(opt, scheduler, max_epochs)
    if sched is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": sched}
