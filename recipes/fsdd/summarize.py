"""Print a Markdown table of test accuracy per run folder (from the CSV logs and confusion matrices).

    python recipes/fsdd/summarize.py runs/fsdd_tdnn_official runs/fsdd_tdnn_speaker ...

Columns: epochs trained, the epoch of the checkpoint that was tested (lowest ``val/loss``) and its
validation accuracy, test accuracy and clip count, and the wall time that ``run.sh`` wrote to
``runs/<name>.log`` ("recipe: <name> took N s").
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

WALL_TIME = re.compile(r"recipe: \S+ took (\d+) s")


def newest_log(run: Path) -> Path | None:
    logs = sorted(run.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    return logs[-1] if logs else None


def read_rows(log: Path) -> list[dict[str, float]]:
    with open(log) as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Last logged ``test/*`` values."""
    metrics: dict[str, float] = {}
    for row in rows:
        metrics.update({k: v for k, v in row.items() if k.startswith("test/")})
    return metrics


def best_validation(rows: list[dict[str, float]]) -> tuple[int, int, float] | None:
    """(epochs validated, epoch with the lowest val/loss counted from 1, its val/acc)."""
    val = [row for row in rows if "val/loss" in row]
    if not val:
        return None
    best = min(val, key=lambda row: row["val/loss"])
    return len(val), int(best["epoch"]) + 1, best.get("val/acc", float("nan"))


def wall_seconds(run: Path) -> int | None:
    log = run.parent / f"{run.name}.log"
    if not log.is_file():
        return None
    found = WALL_TIME.findall(log.read_text(errors="replace"))
    return int(found[-1]) if found else None


def main(runs: list[str]) -> int:
    print("| run | epochs | tested epoch (min val loss) | val accuracy | test accuracy | test clips | wall time |")
    print("|---|---|---|---|---|---|---|")
    for run in map(Path, runs):
        log = newest_log(run)
        rows = read_rows(log) if log else []
        metrics = test_metrics(rows)
        validation = best_validation(rows)
        confusion = sorted(run.rglob("confusion_test.json"))
        clips = json.loads(confusion[-1].read_text())["total"] if confusion else "-"
        accuracy = f"{metrics['test/acc']:.2%}" if "test/acc" in metrics else "-"
        epochs, best_epoch, val_acc = (f"{validation[0]}", f"{validation[1]}", f"{validation[2]:.2%}") \
            if validation else ("-", "-", "-")
        seconds = wall_seconds(run)
        wall = f"{seconds / 60:.1f} min" if seconds is not None else "-"
        print(f"| {run.name} | {epochs} | {best_epoch} | {val_acc} | {accuracy} | {clips} | {wall} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
