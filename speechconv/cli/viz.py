"""``speechconv viz``: research views of a model written as PNG files."""

from __future__ import annotations

import argparse

VIEWS = ("filters", "receptive-field", "maximize", "activations", "saliency")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "viz",
        help="research views as PNG: filters, receptive field, activation maximisation, feature maps, saliency",
        description="Draw a view of a model into a PNG. MODEL is a registered model name (random weights, "
        "40-band log-mel front-end at 16 kHz, hop 160, window 400), a pretrained model directory or bundled "
        "name, or a Lightning .ckpt from `speechconv train`. Layers are numbered as `speechconv inspect` "
        "lists them (0 = first; negative counts from the end) or named (e.g. body.2).",
    )
    views = p.add_subparsers(dest="view", metavar="VIEW", required=True)

    def view(name: str, help_text: str, needs_input: bool = False) -> argparse.ArgumentParser:
        v = views.add_parser(name, help=help_text, description=help_text)
        v.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                       help="registered model name, pretrained directory/name or .ckpt")
        v.add_argument("--out", required=True, metavar="PNG", help="PNG file to write")
        if needs_input:
            v.add_argument("--input", required=True, metavar="FILE",
                           help="audio file (or an image file for image models)")
        v.set_defaults(func=run)
        return v

    v = view("filters", "first-layer filters as a grid of patches (frequency x time for audio models)")
    v.add_argument("--max-filters", type=int, default=64, metavar="N",
                   help="draw at most this many filters (default: 64)")

    v = view("receptive-field", "analytic receptive field of one output frame of a layer, on an input's "
             "spectrogram", needs_input=True)
    v.add_argument("--layer", default="-1", metavar="INDEX_OR_NAME",
                   help="layer index or name (default: -1, the model output)")
    v.add_argument("--frame", type=int, default=None, metavar="T",
                   help="output frame of that layer, counted in the layer's output frames (default: the middle)")

    v = view("maximize", "input learned by gradient ascent on one neuron (L2 + total variation, Adam, from "
             "noise), with the analytic receptive field for comparison")
    v.add_argument("--layer", default="-1", metavar="INDEX_OR_NAME",
                   help="layer index or name (default: -1, the model output)")
    v.add_argument("--channel", type=int, default=0, metavar="C",
                   help="channel of that layer; for the output layer, the class (default: 0)")
    v.add_argument("--position", type=int, nargs="+", default=None, metavar="I",
                   help="output position: a time frame, or one index per spatial axis (default: the centre)")
    v.add_argument("--frames", type=int, default=None, metavar="N",
                   help="input length in spectrogram frames for audio models (default: twice the layer's "
                   "receptive field, at least 32)")
    v.add_argument("--steps", type=int, default=200, metavar="N", help="Adam steps (default: 200)")
    v.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    v.add_argument("--l2", type=float, default=1e-3, help="weight of the penalty sum(x^2) (default: 1e-3)")
    v.add_argument("--tv", type=float, default=1e-2,
                   help="weight of the squared total variation penalty (default: 1e-2)")
    v.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed of the starting noise; the same seed gives the same image (default: 0)")

    view("activations", "every layer's output over time for an input file (channels x frames)", needs_input=True)

    v = view("saliency", "gradient of a class score with respect to the input spectrogram", needs_input=True)
    v.add_argument("--class-index", type=int, default=None, metavar="C",
                   help="class to explain (default: the keyword of a pretrained model, else 1)")
    v.add_argument("--frame", type=int, default=None, metavar="T",
                   help="output frame of the model (default: where the score is largest)")


def run(args: argparse.Namespace) -> int:
    from speechconv import viz

    model = viz.load_viz_model(args.model)
    x = viz.load_input(model, args.input) if getattr(args, "input", None) else None
    if args.view == "filters":
        filters = viz.plot_filters(model, args.out, args.max_filters)
        print(f"{args.out}: {len(filters.patches)} filters of layer {filters.layer} ({filters.description})")
    elif args.view == "receptive-field":
        span = viz.plot_receptive_field(model, x, _layer(args.layer), args.frame, args.out)
        print(f"{args.out}: layer {span.layer.name}, output frame {span.t} sees input frames "
              f"{span.frames[0]}..{span.frames[1]}" + _seconds(model, span))
    elif args.view == "maximize":
        shape = None
        if args.frames is not None and model.task == "audio":
            shape = (model.input_shape[0], args.frames)
        position = args.position[0] if args.position and len(args.position) == 1 else args.position
        result = viz.plot_maximize(model, _layer(args.layer), args.channel, position, shape, args.out,
                                   steps=args.steps, lr=args.lr, l2=args.l2, tv=args.tv, seed=args.seed)
        measured = result.measured[0] if result.measured else None
        print(f"{args.out}: activation {result.history[0]:.4g} -> {result.history[-1]:.4g}; receptive field "
              f"frames {result.analytic.visible_frames} analytic, {measured} by gradient")
    elif args.view == "activations":
        maps = viz.plot_activations(model, x, args.out)
        print(f"{args.out}: {len(maps)} layers")
    else:
        result, span = viz.plot_saliency(model, x, args.out, args.class_index, args.frame)
        print(f"{args.out}: class {result.class_index}, output frame {result.frame}, score {result.score:.4g}; "
              f"receptive field frames {span.frames[0]}..{span.frames[1]}")
    return 0


def _layer(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _seconds(model, span) -> str:
    if model.task != "audio":
        return ""
    start, end = span.seconds(model.hop_length, model.n_fft, model.sample_rate)
    return f" ({start:.3f}-{end:.3f} s of audio)"
