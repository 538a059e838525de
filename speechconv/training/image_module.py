"""LightningModule for the image models (LeNet-5 and the small AlexNet/VGG/ResNet variants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from speechconv.models.registry import build_model
from speechconv.training.confusion import accuracy as multiclass_accuracy
from speechconv.training.confusion import confusion_matrix, log_loss_and_accuracy, save_confusion
from speechconv.training.optim import configure
from speechconv.training.state import RngCheckpointMixin


class ImageClassifier(RngCheckpointMixin, pl.LightningModule):
    """Trains a registry image model with cross-entropy; logs loss, accuracy and error per split.

    Parameters
    ----------
    model:
        Registry config, e.g. ``{"name": "lenet5"}``.
    optimizer:
        ``{"name": "sgd"|"adam"|"adamw"|"rmsprop", "lr": ..., ...}`` (see :mod:`speechconv.training.optim`).
    scheduler:
        ``{"name": "plateau"|"cosine"|"step"|..., ...}`` or None.
    label_smoothing:
        Cross-entropy label smoothing.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model)
        self.optimizer_config = optimizer or {"name": "adam", "lr": 1e-3}
        self.scheduler_config = scheduler
        self.label_smoothing = label_smoothing
        self._confusion: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        smoothing = self.label_smoothing if split == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        accuracy = multiclass_accuracy(labels, logits.argmax(dim=1), logits.shape[1])
        size = len(labels)
        log_loss_and_accuracy(self, split, loss, accuracy, size)
        self.log(f"{split}/error", 1.0 - accuracy, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        if split == "test":
            counts = confusion_matrix(labels, logits.argmax(dim=1), logits.shape[1])
            self._confusion = counts if self._confusion is None else self._confusion + counts
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._confusion = None

    def on_test_epoch_end(self) -> None:
        if self._confusion is None:
            return
        confusion = self.trainer.strategy.reduce(self._confusion, reduce_op="sum")
        self._confusion = None
        if self.trainer.is_global_zero:
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            save_confusion(confusion.cpu(), [str(i) for i in range(len(confusion))], folder / "confusion_test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).argmax(dim=1)

    def configure_optimizers(self):
        return configure(self, self.optimizer_config, self.scheduler_config)
