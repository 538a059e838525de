"""Detection over corpora too large for one machine, with Lightning's ``Trainer.predict``.

:class:`DetectionDataModule` serves a list of audio files (paths only: each file is read in blocks by
the step, so memory stays bounded); :class:`DetectionModule.predict_step` runs the same streaming
engine and detector as ``speechconv detect`` and returns one :class:`FileResult` per file. Lightning
shards the file list over processes, so::

    trainer = Trainer(strategy="ddp", accelerator="gpu", devices=8, num_nodes=4,
                      callbacks=[DetectionWriter("detections/")])
    trainer.predict(DetectionModule("hello_small"), datamodule=DetectionDataModule(files), return_predictions=False)

spreads detection over 32 GPUs without new code; each rank writes ``detections/rank<R>.csv`` and
:func:`merge_rank_files` joins them in input order.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from speechconv.detect.detector import Event
from speechconv.detect.outputs import CSV_HEADER, atomic_output, csv_header, format_csv
from speechconv.detect.runner import DEFAULT_CHUNK_SECONDS, FileResult, detect_file


class FileListDataset(Dataset):
    """``(index, path)`` pairs of a file list (the index keeps the input order across ranks)."""

    def __init__(self, files: Sequence[str]):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, str]:
        return index, self.files[index]


def collate_paths(batch: list[tuple[int, str]]) -> tuple[list[int], list[str]]:
    return [index for index, _ in batch], [path for _, path in batch]


class DetectionDataModule(L.LightningDataModule):
    """A file list (or a text file with one path per line) for ``Trainer.predict``."""

    def __init__(self, files: Sequence[str] | str, batch_size: int = 1, num_workers: int = 0):
        super().__init__()
        if isinstance(files, str):
            with open(files) as f:
                files = [line.strip() for line in f if line.strip()]
        self.files = list(files)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(FileListDataset(self.files), batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_paths)


class DetectionModule(L.LightningModule):
    """Wraps a pretrained keyword spotter; ``predict_step`` returns one record per file,
    ``{"index", "path", "duration", "error", "events": [{"start", "end", "peak", "score"}, ...]}``
    (plain containers, which Lightning can move and gather; :func:`record_to_result` reads them)."""

    def __init__(self, model: str = "hello_small", threshold: float | None = None,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS):
        super().__init__()
        from speechconv.pretrained import load_pretrained

        self.save_hyperparameters()
        self.spotter = load_pretrained(model, fold_bn=True)  # inference only
        self.overrides: dict[str, Any] = {"threshold": threshold}
        self.chunk_seconds = chunk_seconds

    def predict_step(self, batch: tuple[list[int], list[str]], batch_idx: int = 0) -> list[dict[str, Any]]:
        indices, paths = batch
        return [
            result_to_record(index, detect_file(self.spotter, path, self.overrides, self.chunk_seconds))
            for index, path in zip(indices, paths)
        ]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.spotter(wave)


def result_to_record(index: int, result: FileResult) -> dict[str, Any]:
    return {"index": index, "path": result.path, "duration": result.duration, "error": result.error,
            "events": [event.as_dict() for event in result.events]}


def record_to_result(record: dict[str, Any]) -> FileResult:
    events = [Event(**event) for event in record["events"]]
    return FileResult(record["path"], events, record["duration"], record["error"])


class DetectionWriter(BasePredictionWriter):
    """Writes each rank's detections to ``<folder>/rank<R>.csv`` (columns ``index`` + the CSV columns;
    a failed file gets one row with its error in ``error``)."""

    def __init__(self, folder: str):
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        os.makedirs(self.folder, exist_ok=True)
        records = [record for batch in _flatten_dataloaders(predictions) for record in batch]
        path = os.path.join(self.folder, f"rank{trainer.global_rank}.csv")
        with atomic_output(path) as f:
            f.write("index," + csv_header().rstrip("\n") + ",error\n")
            for record in sorted(records, key=lambda r: r["index"]):
                index, result = record["index"], record_to_result(record)
                if not result.ok:
                    f.write(_csv_line([index, result.path, "", "", "", "", result.error]))
                for line in format_csv(result.path, result.events).splitlines():
                    f.write(f"{index},{line},\n")


def _flatten_dataloaders(predictions: list) -> list:
    if predictions and isinstance(predictions[0], list) and predictions[0] and isinstance(predictions[0][0], list):
        return [batch for loader in predictions for batch in loader]
    return predictions


def _csv_line(values: list) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def merge_rank_files(folder: str, output: str) -> int:
    """Join the ``rank*.csv`` files of :class:`DetectionWriter` into one ``speechconv detect`` CSV in
    input order (failed files are left out); returns the number of failed files."""
    rows, failed = [], 0
    for name in sorted(os.listdir(folder)):
        if name.startswith("rank") and name.endswith(".csv"):
            with open(os.path.join(folder, name), newline="") as f:
                for row in csv.DictReader(f):
                    if row["error"]:
                        failed += 1
                    else:
                        rows.append((int(row["index"]), float(row["start"]), row))
    rows.sort(key=lambda item: item[:2])
    with atomic_output(output) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for _, _, row in rows:
            writer.writerow([row[key] for key in CSV_HEADER])
    return failed


def predict_events(
    files: Sequence[str], model: str, threshold: float | None = None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    **trainer_options: Any,
) -> list[FileResult]:
    """One-call convenience: results per file in input order (gathered on this process)."""
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
               "enable_model_summary": False, **trainer_options}
    trainer = L.Trainer(**options)
    predictions = trainer.predict(DetectionModule(model, threshold, chunk_seconds),
                                  datamodule=DetectionDataModule(files))
    records = sorted((record for batch in predictions for record in batch), key=lambda r: r["index"])
    return [record_to_result(record) for record in records]
