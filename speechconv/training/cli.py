"""``speechconv train``: Lightning's ``LightningCLI`` over the speechconv modules and data modules.

``speechconv train --config conf/NAME.yaml [overrides]`` runs ``fit``; ``speechconv train
{fit,validate,test,predict} --config ...`` picks the subcommand explicitly. Every LightningCLI option
passes through: ``--trainer.max_epochs 1``, ``--ckpt_path last``, ``--data.batch_size 64``,
``--trainer.accelerator gpu --trainer.devices 4 --trainer.strategy ddp``, ``--print_config``.
"""

from __future__ import annotations

import sys

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from speechconv.errors import SpeechconvError

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class SpeechconvCLI(LightningCLI):
    """LightningCLI in subclass mode: configs name ``model.class_path`` and ``data.class_path``."""

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs):
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"prog": "speechconv train"} if run else {})
        super().__init__(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                         args=args, run=run, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--num_threads", type=int, default=0,
                            help="torch CPU threads (0 = torch's default)")
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="after fit, test the best checkpoint (or the last weights without one)")

    def _subconfig(self):
        return self.config.get(self.subcommand, self.config) if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        threads = self._subconfig().get("num_threads", 0)
        if threads:
            torch.set_num_threads(int(threads))

    def after_fit(self) -> None:
        if not self._subconfig().get("test_after_fit", False) or self.trainer.interrupted:
            return
        callback = self.trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") if callback is not None else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def with_subcommand(argv: list[str]) -> list[str]:
    """``fit`` unless the first argument already names a LightningCLI subcommand (or asks for help)."""
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help")):
        return list(argv)
    return ["fit", *argv]


def train_main(argv: list[str]) -> int:
    """Run LightningCLI on ``argv`` (the arguments after ``speechconv train``)."""
    saved = sys.argv
    sys.argv = [saved[0]]  # LightningCLI gets its arguments from ``args`` only
    try:
        SpeechconvCLI(args=with_subcommand(argv))
    except Exception as err:
        cause = speechconv_cause(err)
        if cause is not None:  # jsonargparse wraps errors raised while building modules
            raise cause from None
        raise
    finally:
        sys.argv = saved
    return 0


def speechconv_cause(err: BaseException) -> SpeechconvError | None:
    """The first :class:`SpeechconvError` in an exception chain (causes, contexts, grouped errors)."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, SpeechconvError):
            return current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(e for e in getattr(current, "exceptions", ()) if isinstance(e, BaseException))
    return None
