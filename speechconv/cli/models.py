"""``speechconv models``: every registered model with its parameters and MACs."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

EPILOG = """\
columns: registered name (for --model, `speechconv inspect` and configs), task (audio or image), input shape
(audio: features x frames; image: channels x height x width), trainable parameters, multiply-accumulates
(audio models: per second of audio at 100 frames/s; image models: per image), description."""


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list registered models with parameters and MACs",
                              description="List every registered model: task, input, parameters and MACs "
                              "(per second of audio at 100 frames/s for audio models, per image otherwise).",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=run)


@contextmanager
def without_weight_init() -> Iterator[None]:
    """Make ``torch.nn.init``'s initialisers no-ops while models are built: parameter counts and MACs need
    shapes only, and initialising VGG-16's 138 M weights took seconds."""
    import torch

    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {name: getattr(init, name) for name in names}
    for name in names:
        setattr(init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def run(args: argparse.Namespace) -> int:
    from speechconv.models.registry import build_model, list_models

    rows = [("name", "task", "input", "params", "MACs", "description")]
    for entry in list_models():
        with without_weight_init():
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
