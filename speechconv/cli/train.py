"""``speechconv train``: train, validate or test a model from a YAML config (Lightning's LightningCLI)."""

from __future__ import annotations

import argparse
import os

from speechconv.errors import ConfigError

HELP = "train a model from a config (LightningCLI: speechconv train [fit|validate|test] --config conf/X.yaml)"


def register(subparsers) -> None:
    # prefix_chars="+" stops argparse from reading the LightningCLI options (--config, --trainer.*)
    # so all of them reach LightningCLI untouched; `speechconv train --help` is LightningCLI's help.
    parser = subparsers.add_parser("train", help=HELP, description=HELP, prefix_chars="+", add_help=False)
    parser.add_argument("lightning_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def config_files(argv: list[str]) -> list[str]:
    """The files given to LightningCLI with ``--config FILE``, ``--config=FILE`` or ``-c FILE``."""
    files = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def run(args: argparse.Namespace) -> int:
    if not args.lightning_args:
        raise ConfigError("train needs a config: speechconv train --config conf/NAME.yaml [overrides]")
    from speechconv.pretrained import read_yaml

    for path in config_files(args.lightning_args):  # one line per broken file, before Lightning starts
        if os.path.isfile(path):  # anything else LightningCLI reads as an inline YAML/JSON string
            read_yaml(path)
    from speechconv.training.cli import train_main

    return train_main(args.lightning_args)
