"""``speechconv train``: train, validate or test a model from a YAML config (Lightning's LightningCLI)."""

from __future__ import annotations

import argparse

from speechconv.errors import ConfigError

HELP = "train a model from a config (LightningCLI: speechconv train [fit|validate|test] --config conf/X.yaml)"


def register(subparsers) -> None:
    # prefix_chars="+" stops argparse from reading the LightningCLI options (--config, --trainer.*)
    # so all of them reach LightningCLI untouched; `speechconv train --help` is LightningCLI's help.
    parser = subparsers.add_parser("train", help=HELP, description=HELP, prefix_chars="+", add_help=False)
    parser.add_argument("lightning_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.training.cli import train_main

    if not args.lightning_args:
        raise ConfigError("train needs a config: speechconv train --config conf/NAME.yaml [overrides]")
    return train_main(args.lightning_args)
