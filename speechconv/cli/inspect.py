"""``speechconv inspect``: per-layer table of a model (shapes, parameters, MACs, receptive fields)."""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="per-layer table of a model: output shape, parameters, MACs, receptive field",
        description="Print a per-layer table (layer, output shape, parameters, MACs, receptive field in "
        "frames and ms) and totals for a registered model name or a model YAML config.",
    )
    p.add_argument("model", metavar="MODEL_OR_CONFIG",
                   help="model name (see `speechconv models`) or YAML file")
    p.add_argument("--frames", type=int, default=100,
                   help="input frames for audio models (default 100 = 1 s)")
    p.add_argument("--sample-rate", type=int, default=16000,
                   help="front-end sample rate for ms (default 16000)")
    p.add_argument("--hop-length", type=int, default=160, help="front-end hop in samples (default 160)")
    p.add_argument("--win-length", type=int, default=400, help="front-end window in samples (default 400)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.models.registry import build_model, get_entry, load_model_config
    from speechconv.summary import summarize

    config = load_model_config(args.model) if os.path.isfile(args.model) else {"name": args.model}
    entry = get_entry(config["name"])
    model = build_model(config)
    shape = entry.input_shape
    if entry.task == "audio":
        features = getattr(model, "in_features", shape[0])
        shape = (features, args.frames)
        table = summarize(model, shape).format(args.hop_length, args.win_length, args.sample_rate)
    else:
        table = summarize(model, shape).format()
    print(f"{config['name']}: {entry.description}")
    print(table)
    if entry.task == "audio":
        ctx = model.context()
        rate = args.sample_rate / args.hop_length
        print(f"frame stride {ctx['frame_stride']}, left context {ctx['left_context']} frames, look-ahead "
              f"{ctx['lookahead']} frames, {model.macs_per_second(rate) / 1e6:.2f} M MACs per second of audio")
    return 0
