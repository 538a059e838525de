"""One progress line for a whole training run: steps done of all epochs, loss, and the time left."""

from __future__ import annotations

import sys
import time

from lightning.pytorch import Callback


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunProgress(Callback):
    """A tqdm bar over every training step of the run (all epochs, not one at a time), with the epoch,
    the last training loss and validation loss, and an ETA for the whole run. Resumed runs start the bar
    at the steps already done and time only the new ones. Writes to stderr; ``refresh_seconds`` limits
    the redraws when stderr is not a terminal (logs get a line every so often instead of a bar)."""

    def __init__(self, refresh_seconds: float = 10.0) -> None:
        self.refresh_seconds = float(refresh_seconds)
        self._bar = None
        self._val_loss: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        from tqdm.auto import tqdm

        total = trainer.estimated_stepping_batches
        interactive = sys.stderr.isatty()
        self._bar = tqdm(total=total if total != float("inf") else None, initial=trainer.global_step,
                         unit="step", desc="train", file=sys.stderr, dynamic_ncols=True,
                         mininterval=0.5 if interactive else self.refresh_seconds,
                         bar_format=None if interactive else "{desc}: {n}/{total} steps, {elapsed} "
                         "elapsed, {remaining} left{postfix}\n")
        self._started = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._bar is None:
            return
        loss = trainer.callback_metrics.get("train/loss_step")
        postfix = {"epoch": f"{trainer.current_epoch + 1}/{trainer.max_epochs}"}
        if loss is not None:
            postfix["loss"] = f"{float(loss):.3f}"
        if self._val_loss is not None:
            postfix["val"] = f"{self._val_loss:.3f}"
        total = trainer.num_training_batches * trainer.max_epochs
        if self._bar.total != total and total != float("inf"):
            self._bar.total = total
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(trainer.global_step - self._bar.n)

    def on_validation_end(self, trainer, pl_module) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and not trainer.sanity_checking:
            self._val_loss = float(loss)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            print(f"train: {trainer.global_step} steps, {trainer.current_epoch} epoch(s), "
                  f"{format_seconds(time.monotonic() - self._started)} this session", file=sys.stderr)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TimeBudget(Callback):
    """Fit a training run into ``minutes``: after ``measure_steps`` steps (or the first epoch, if shorter)
    the time per step sets how many epochs fit, which becomes the trainer's ``max_epochs`` and the length
    of a cosine learning-rate schedule. After each epoch the count is lowered if the epochs take longer
    than measured. The choice and the time spent are saved in checkpoints, so a resumed run keeps its
    schedule and its budget. Training stops when the budget is spent."""

    def __init__(self, minutes: float, measure_steps: int = 10, validation_share: float = 0.4) -> None:
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        self.budget = float(minutes) * 60.0
        self.measure_steps = int(measure_steps)
        self.validation_share = float(validation_share)
        self.epochs: int | None = None
        self.spent = 0.0  # seconds of earlier sessions of this run
        self._t0 = self._first = 0.0
        self._step0 = self._epoch0 = 0

    def state_dict(self) -> dict:
        return {"epochs": self.epochs, "spent": self.spent + self._elapsed()}

    def load_state_dict(self, state: dict) -> None:
        self.epochs, self.spent = state.get("epochs"), float(state.get("spent", 0.0))

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0 if self._t0 else 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.monotonic()
        self._first = 0.0
        self._step0 = trainer.global_step
        self._epoch0 = trainer.current_epoch
        if self.epochs is not None:
            self._apply(trainer, self.epochs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.global_step - self._step0
        if done == 1:
            self._first = time.monotonic()  # the first step pays for data-loader start-up
        if self.epochs is None and done == self.measure_steps + 1:
            self._choose(trainer, (time.monotonic() - self._first) / self.measure_steps)
        if self.spent + self._elapsed() >= self.budget:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.epochs is None:  # an epoch shorter than the measurement
            done = max(1, trainer.global_step - self._step0)
            self._choose(trainer, self._elapsed() / done)
            return
        # slower than measured (a busy machine): fewer epochs, so the schedule still ends inside the budget
        epochs_done = trainer.current_epoch + 1
        session_epochs = epochs_done - self._epoch0
        if session_epochs > 0:
            per_epoch = self._elapsed() / session_epochs
            fit = epochs_done + int(max(0.0, self.budget - self.spent - self._elapsed()) // per_epoch)
            if fit < self.epochs:
                self.epochs = max(fit, epochs_done)
                self._apply(trainer, self.epochs)
                print(f"train: about {per_epoch:.0f} s per epoch: {self.epochs} epoch(s) fit "
                      f"{self.budget / 60:g} min", file=sys.stderr, flush=True)

    def _choose(self, trainer, seconds_per_step: float) -> None:
        steps = trainer.num_training_batches
        val_steps = sum(trainer.num_val_batches) if trainer.num_val_batches else 0
        epoch = max(seconds_per_step * (steps + self.validation_share * val_steps), 1e-3)
        fit = int((self.budget - self.spent) // epoch)
        self.epochs = max(1, trainer.current_epoch + 1, min(trainer.max_epochs or 1000, fit))
        self._apply(trainer, self.epochs)
        print(f"train: {seconds_per_step:.2f} s per step, about {epoch:.0f} s per epoch: {self.epochs} epoch(s) fit "
              f"{self.budget / 60:g} min", file=sys.stderr, flush=True)

    @staticmethod
    def _apply(trainer, epochs: int) -> None:
        import torch

        trainer.fit_loop.max_epochs = epochs
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                config.scheduler.T_max = epochs
