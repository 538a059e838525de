"""``speechconv train``: Lightning's ``LightningCLI`` over the speechconv modules and data modules.

``speechconv train --config conf/NAME.yaml [overrides]`` runs ``fit``; ``speechconv train
{fit,validate,test,predict} --config ...`` picks the subcommand explicitly. Every LightningCLI option
passes through: ``--trainer.max_epochs 1``, ``--ckpt_path last``, ``--data.batch_size 64``,
``--trainer.accelerator gpu --trainer.devices 4 --trainer.strategy ddp``, ``--print_config``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from speechconv.errors import SpeechconvError

SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: Exit status after SIGTERM, as a shell reports a process killed by it (128 + 15).
SIGTERM_EXIT = 128 + signal.SIGTERM


class _NoTips(logging.Filter):
    """Drops Lightning's advertising tips ("💡 Tip: ... try installing litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())


class CheckpointOnSigterm(Callback):
    """On SIGTERM (Lightning stops after the current batch) or Ctrl-C, save ``last.ckpt`` where each
    ModelCheckpoint with ``save_last`` keeps it, so ``--ckpt_path .../last.ckpt`` resumes at the next batch,
    mid-epoch included."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        stopped = isinstance(exception, (SIGTERMException, KeyboardInterrupt))
        if not stopped or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_last", False) and callback.dirpath:
                path = os.path.join(callback.dirpath, callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)
                trainer.save_checkpoint(path)
                self.saved.append(path)


class SpeechconvCLI(LightningCLI):
    """LightningCLI in subclass mode: configs name ``model.class_path`` and ``data.class_path``."""

    def __init__(self, args: list[str] | None = None, run: bool = True,
                 on_sigterm: CheckpointOnSigterm | None = None, **kwargs):
        self.on_sigterm = on_sigterm or CheckpointOnSigterm()
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

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(self.on_sigterm)
        return trainer

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
    """Run LightningCLI on ``argv`` (the arguments after ``speechconv train``).

    Returns 0, or :data:`SIGTERM_EXIT` when a SIGTERM stopped the run (after ``last.ckpt`` was saved).
    """
    saved = sys.argv
    sys.argv = [saved[0]]  # LightningCLI gets its arguments from ``args`` only
    on_sigterm = CheckpointOnSigterm()
    try:
        SpeechconvCLI(args=with_subcommand(argv), on_sigterm=on_sigterm)
    except SIGTERMException:  # a SystemExit without a code: it would exit with status 0
        resume = f"; resume with --ckpt_path {on_sigterm.saved[0]}" if on_sigterm.saved else ""
        print(f"speechconv: training stopped by SIGTERM{resume}", file=sys.stderr)
        return SIGTERM_EXIT
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
