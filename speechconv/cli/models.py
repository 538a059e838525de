"""``speechconv models``: every registered model with its parameters and MACs."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list registered models with parameters and MACs",
                              description="List every registered model: task, input, parameters and MACs "
                              "(per second of audio at 100 frames/s for audio models, per image otherwise).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.models.registry import build_model, list_models

    rows = [("name", "task", "input", "params", "MACs", "description")]
    for entry in list_models():
        model = build_model(entry.name)
        params = sum(p.numel() for p in model.parameters())
        macs = model.macs_per_second(100.0) if entry.task == "audio" else model.count_macs(entry.input_shape)
        unit = "/s" if entry.task == "audio" else "/image"
        rows.append((entry.name, entry.task, "x".join(map(str, entry.input_shape)), f"{params:,}",
                     f"{macs / 1e6:,.2f}M{unit}", entry.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    return 0
