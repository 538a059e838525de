"""``speechconv inspect``: per-layer table of a model (shapes, parameters, MACs, receptive fields)."""

from __future__ import annotations

import argparse
import os
import textwrap

RF_AUDIO = ("RF (frames) 'SIZE /STRIDE': one output value of the layer depends on SIZE consecutive input "
            "frames, and neighbouring outputs are STRIDE frames apart. RF (ms): the audio those SIZE frames "
            "cover, ((SIZE-1) x hop + window) / sample rate. 'all': the whole input.")
RF_IMAGE = ("RF (px) 'SIZE /STRIDE': one output value of the layer depends on SIZE input pixels along each "
            "axis, and neighbouring outputs are STRIDE pixels apart. 'all': the whole image.")

EPILOG = f"""\
columns: layer name (as `speechconv viz --layer` takes it), block type, output shape (channels x
[frequency x] frames for audio models), trainable parameters, multiply-accumulates for the whole
input, and the receptive field (RF):
{textwrap.fill(RF_AUDIO, 100, initial_indent="  ", subsequent_indent="  ")}
{textwrap.fill(RF_IMAGE, 100, initial_indent="  ", subsequent_indent="  ")}"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="per-layer table of a model: output shape, parameters, MACs, receptive field",
        description="Print a per-layer table (layer, output shape, parameters, MACs, receptive field in "
        "frames and ms) and totals for a registered model name or a model YAML config.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_OR_CONFIG",
                   help="model name (see `speechconv models`) or YAML file")
    p.add_argument("--frames", type=int, default=100, metavar="N",
                   help="input length in spectrogram frames for audio models (default: 100, 1 s at a 10 ms hop)")
    p.add_argument("--sample-rate", type=int, default=16000, metavar="HZ",
                   help="front-end sample rate in Hz, to give receptive fields in ms (default: 16000)")
    p.add_argument("--hop-length", type=int, default=160, metavar="SAMPLES",
                   help="front-end hop between frames in samples (default: 160, 10 ms at 16 kHz)")
    p.add_argument("--win-length", type=int, default=400, metavar="SAMPLES",
                   help="front-end analysis window in samples (default: 400, 25 ms at 16 kHz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.models.registry import build_model, get_entry, load_model_config
    from speechconv.pretrained import read_yaml
    from speechconv.summary import summarize

    if os.path.isfile(args.model):
        read_yaml(args.model)  # a syntax error becomes one line: file, line, problem
        config = load_model_config(args.model)
    else:
        config = {"name": args.model}
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
    print(textwrap.fill(RF_AUDIO if entry.task == "audio" else RF_IMAGE, 100))
    return 0
