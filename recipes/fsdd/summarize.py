"""Print a Markdown table of test accuracy per run folder (from the CSV logs and confusion matrices).

    python recipes/fsdd/summarize.py runs/fsdd_tdnn_official runs/fsdd_tdnn_speaker ...
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def test_metrics(run: Path) -> dict[str, float]:
    """Last logged test metrics of the newest CSV log under ``run``."""
    logs = sorted(run.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not logs:
        return {}
    metrics: dict[str, float] = {}
    with open(logs[-1]) as f:
        for row in csv.DictReader(f):
            metrics.update({k: float(v) for k, v in row.items() if k.startswith("test/") and v})
    return metrics


def main(runs: list[str]) -> int:
    print("| run | test accuracy | test clips |")
    print("|---|---|---|")
    for run in map(Path, runs):
        metrics = test_metrics(run)
        confusion = sorted(run.rglob("confusion_test.json"))
        clips = json.loads(confusion[-1].read_text())["total"] if confusion else "-"
        accuracy = f"{metrics['test/acc']:.2%}" if "test/acc" in metrics else "-"
        print(f"| {run.name} | {accuracy} | {clips} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
