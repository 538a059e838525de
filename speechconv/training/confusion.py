"""Accuracy and confusion matrices (torchmetrics), and saving a matrix as JSON + a PNG heat map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` counts; row = true class, column = predicted class (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(predictions, labels, num_classes, validate_args=False)


def accuracy(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of correct predictions (torchmetrics' micro-averaged multiclass accuracy)."""
    from torchmetrics.functional.classification import multiclass_accuracy

    return multiclass_accuracy(predictions, labels, num_classes, average="micro", validate_args=False)


def log_loss_and_accuracy(module, split: str, loss: torch.Tensor, accuracy: torch.Tensor, size: int) -> None:
    """``{split}/loss`` (per step and epoch when training, per epoch otherwise) and ``{split}/acc`` (per epoch)
    through a LightningModule's ``log``, as every training module of speechconv logs them."""
    on_step = split == "train"
    module.log(f"{split}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=size,
               sync_dist=not on_step)
    module.log(f"{split}/acc", accuracy, prog_bar=split != "train", on_step=False, on_epoch=True,
               batch_size=size, sync_dist=True)


def save_confusion(matrix: torch.Tensor, names: Sequence[str], stem: str | Path, title: str = "") -> Path:
    """Write ``stem.json`` (names, counts, accuracy) and ``stem.png``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    counts = matrix.long()
    total = int(counts.sum())
    accuracy = float(counts.diag().sum()) / max(total, 1)
    stem.with_suffix(".json").write_text(json.dumps(
        {"labels": list(names), "matrix": counts.tolist(), "accuracy": accuracy, "total": total}, indent=1))
    rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {accuracy:.2%} ({total} clips)")
    for i in range(len(names)):
        for j in range(len(names)):
            value = int(counts[i, j])
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
