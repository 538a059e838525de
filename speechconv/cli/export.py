"""``speechconv export``: write a model's streaming step as ONNX or TorchScript."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the streaming step (ONNX / TorchScript)",
        description=(
            "Export the fixed-shape streaming step (chunk, *state) -> (posteriors, *new_state) of a keyword "
            "spotter. State names/shapes, the initial state, labels, timing and detector defaults are stored "
            "in the file (ONNX metadata_props / TorchScript _extra_files)."
        ),
    )
    parser.add_argument("--model", default="hello_small", metavar="NAME_OR_PATH",
                        help="bundled name, model directory or Lightning .ckpt (default: hello_small)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                        help="onnx (for onnxruntime, default) or torchscript")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output file; checked before the export, replaced atomically (a device or the target "
                        "of a symbolic link is written in place)")
    parser.add_argument("--chunk-samples", type=int, default=None, metavar="N",
                        help="samples per step, a multiple of hop x model frame stride (default: one output frame)")
    parser.add_argument("--quantize", choices=("int8", "int8-static"), default=None,
                        help="int8 weights (dynamic activations), or int8-static calibrated on --calibration WAV "
                             "(default: none, float32)")
    parser.add_argument("--calibration", default=None, metavar="WAV",
                        help="audio for int8-static calibration (default: none; needed with --quantize int8-static)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from speechconv.errors import ConfigError
    from speechconv.export import export_spotter
    from speechconv.output_files import check_output, write_output
    from speechconv.pretrained import load_pretrained

    calibration = None
    if args.quantize == "int8-static":
        if args.calibration is None:
            raise ConfigError("--quantize int8-static needs --calibration WAV")
    check_output(args.out)
    spotter = load_pretrained(args.model)
    if args.calibration is not None:
        from speechconv.audio import load_audio

        calibration = load_audio(args.calibration, spotter.sample_rate)[0].numpy()
    with tempfile.TemporaryDirectory(prefix="speechconv-export-") as folder:
        exported = os.path.join(folder, "model" + (".onnx" if args.format == "onnx" else ".pt"))
        spec = export_spotter(spotter, exported, args.format, args.chunk_samples, args.quantize, calibration)
        with open(exported, "rb") as f:
            write_output(args.out, f.read())
    print(
        f"wrote {args.out}: {args.format}{' ' + spec.quantization if spec.quantization else ''}, "
        f"chunk {spec.chunk_samples} samples -> {spec.frames_per_chunk} frame(s), "
        f"{len(spec.state_names)} state tensors, keyword {spec.keyword!r}",
        file=sys.stderr,
    )
    return 0
