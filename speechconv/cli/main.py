"""``speechconv`` entry point. Each subcommand lives in its own module under ``speechconv.cli``
and exposes ``register(subparsers)``, which adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import importlib
import sys

from speechconv import __version__
from speechconv.errors import SpeechconvError

# Order here is the order in `speechconv --help`.
SUBCOMMANDS = [
    "detect",
    "listen",
    "info",
    "inspect",
    "models",
    "viz",
    "train",
    "synth",
    "evalstream",
    "evaluate",
    "export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechconv",
        description="Convolutional speech models: keyword detection, training recipes and research tools.",
    )
    parser.add_argument("--version", action="version", version=f"speechconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"speechconv.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
