"""``speechconv`` entry point. Each subcommand lives in its own module under ``speechconv.cli``
and exposes ``register(subparsers)``, which adds its parser and sets ``func``.

Only the module of the command being run is imported: ``speechconv --help`` and ``speechconv info``
start without torch, Lightning or matplotlib. The other commands appear in ``--help`` through the
one-line summaries below (a test checks that they match the modules' own).

The core install (``pip install speechconv``) has no PyTorch. Commands outside ``TORCH_FREE`` then stop with
one line naming the extra, before their module is imported (importing it would fail on ``import torch``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Iterable

from speechconv import __version__
from speechconv.errors import SpeechconvError

# command -> (module under speechconv.cli, summary in `speechconv --help`); this order is the help's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("detect", "detect the keyword in audio files"),
    "listen": ("listen", "detect the keyword live from the microphone"),
    "info": ("info", "show duration, sample rate, channels and format of audio files"),
    "inspect": ("inspect", "per-layer table of a model: output shape, parameters, MACs, receptive field"),
    "models": ("models", "list registered models with parameters and MACs"),
    "viz": ("viz", "research views as PNG: filters, receptive field, activation maximisation, feature maps, "
            "saliency"),
    "train": ("train", "train a model from a config (LightningCLI: speechconv train [fit|validate|test] "
              "--config conf/X.yaml)"),
    "train-keyword": ("train_keyword", "train a detector for your own keyword from a typed phrase (synthesis, "
                      "training, evaluation, packaging)"),
    "synth": ("synth", "synthesize keyword / confusable-negative clips with offline TTS"),
    "make-stream": ("make_stream", "concatenate keyword and other clips over background noise, with a "
                    "ground-truth CSV"),
    "evaluate": ("evaluate", "FRR against false alarms per hour on streams with ground truth; DET curve"),
    "export": ("export", "export the streaming step (ONNX / TorchScript)"),
}

#: Commands that run on the core install, without PyTorch (the onnxruntime engine). Every other command
#: needs the ``train`` extra.
TORCH_FREE = frozenset({"detect", "listen", "info", "evaluate"})
TRAIN_EXTRA = 'pip install "speechconv[train]"'


def has_torch() -> bool:
    """Whether PyTorch is installed, without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or half-imported torch
        return False


def missing_extra(argv: list[str]) -> str | None:
    """The one-line reason the command in ``argv`` cannot run on this install, or None when it can (or when
    a top-level ``--help``/``--version`` before it answers instead)."""
    command = command_in(argv)
    if command not in COMMANDS or command in TORCH_FREE:
        return None
    if {"-h", "--help", "--version"} & set(argv[:argv.index(command)]) or has_torch():
        return None
    return f"speechconv {command}: needs PyTorch; {TRAIN_EXTRA}"


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``speechconv`` parser. Commands in ``load`` (default: all) get their full parser from their
    module; the others are listed with their summary only."""
    load = set(COMMANDS) if load is None else set(load)
    parser = argparse.ArgumentParser(
        prog="speechconv",
        description="Convolutional speech models: keyword detection, training recipes and research tools.",
    )
    parser.add_argument("--version", action="version", version=f"speechconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if name in load:
            importlib.import_module(f"speechconv.cli.{module}").register(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: its first argument that is not an option (the top-level
    options take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _write_file_names_as_bytes() -> None:
    """File names that are not valid UTF-8 reach Python as surrogate escapes; print their own bytes (as
    ``ls`` does) instead of failing with UnicodeEncodeError."""
    try:
        sys.stdout.reconfigure(errors="surrogateescape")
    except (AttributeError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _write_file_names_as_bytes()
    reason = missing_extra(argv)
    if reason:
        print(reason, file=sys.stderr)
        return 1
    parser = build_parser([command_in(argv)])
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SpeechconvError as err:
        print(f"speechconv: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("speechconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
