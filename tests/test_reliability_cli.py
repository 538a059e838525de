"""CLI start-up, help texts, quiet third-party libraries and caches outside the home folder."""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechconv.cli.main import COMMANDS, build_parser, main

HEAVY = ("torch", "lightning", "matplotlib")


def imported_modules(*args: str) -> set[str]:
    """Top-level packages imported by ``speechconv ARGS`` in a fresh interpreter (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "speechconv.cli.main", *args],
                          capture_output=True, text=True, timeout=120)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +([\w.]+)$", proc.stderr, re.MULTILINE)
    assert names, proc.stderr[-2000:]
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], ["info", "FILE"], ["inspect", "--help"],
                                  ["models", "--help"], ["evaluate", "--help"], ["viz", "--help"]])
def test_light_commands_start_without_torch_lightning_matplotlib(tmp_path, args):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    modules = imported_modules(*[str(wav) if a == "FILE" else a for a in args])
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_top_level_help_lists_every_command_with_its_own_summary():
    full = build_parser()
    listed = {a.dest: a.help for a in _subparsers_action(full)._choices_actions}
    assert listed == {name: summary for name, (_, summary) in COMMANDS.items()}


def _subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _option_parsers(parser: argparse.ArgumentParser, name: str):
    """(name, parser) for a command and its nested subcommands (viz views)."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _option_parsers(sub, f"{name} {sub_name}")


# detect, listen and export have their own owners; train's options are LightningCLI's.
CHECKED = [name for name in COMMANDS if name not in ("detect", "listen", "export", "train")]
UNITS = {"sample_rate": "Hz", "gap": "seconds", "duration": "seconds", "early": "seconds", "late": "seconds",
         "snr": "dB", "hop_length": "samples", "win_length": "samples", "frames": "frames"}


@pytest.mark.parametrize("command", CHECKED)
def test_every_option_has_help_with_default_and_units(command):
    parser = _subparsers_action(build_parser([command])).choices[command]
    for name, sub in _option_parsers(parser, command):
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or not action.option_strings:
                continue
            where = f"{name} {action.option_strings[-1]}"
            assert action.help, f"{where} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert "default" in action.help, f"{where}: help does not give the default"
            if action.dest in UNITS:
                assert UNITS[action.dest] in action.help, f"{where}: help does not give the unit"


def test_no_help_or_model_description_mentions_documents_users_never_see():
    from speechconv.models.registry import list_models

    texts = [entry.description for entry in list_models()]
    full = build_parser()
    for name, parser in _option_parsers(full, "speechconv"):
        if name != "speechconv train":
            texts.append(parser.format_help())
    for text in texts:
        assert not re.search(r"seed spec|as the seed|the seed's|the seed preset", text), text


def test_inspect_explains_the_rf_column(capsys):
    assert main(["inspect", "tdnn"]) == 0
    out = capsys.readouterr().out
    assert "RF (frames)" in out and "'SIZE /STRIDE': one output value of the layer depends on SIZE" in out
    assert "((SIZE-1) x hop + window) / sample rate" in out
    help_text = _subparsers_action(build_parser(["inspect"])).choices["inspect"].format_help()
    assert "RF (frames) 'SIZE /STRIDE'" in help_text and "RF (px)" in help_text


def test_models_are_listed_without_initialising_weights(capsys):
    import torch

    from speechconv.cli.models import without_weight_init

    weight, before = torch.zeros(3), torch.nn.init.uniform_
    with without_weight_init():
        assert torch.nn.init.uniform_(weight) is weight and not weight.any()
        assert torch.nn.init.kaiming_uniform_(weight, a=5) is weight and not weight.any()
    assert torch.nn.init.uniform_ is before
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^vgg16 +image +3x224x224 +138,357,544 ", out, re.MULTILINE)
    assert re.search(r"^tdnn +audio +40x100 +141,570 +14\.05M/s ", out, re.MULTILINE)


# --- quiet third-party libraries --------------------------------------------------------------------


def test_torchscript_export_and_load_do_not_warn(tmp_path):
    from speechconv.export.torchscript import export_torchscript, load_torchscript
    from speechconv.pretrained import load_pretrained

    spotter = load_pretrained("hello_small")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_torchscript(spotter, tmp_path / "step.pt")
        load_torchscript(tmp_path / "step.pt")
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]


def test_onnx_quantisation_does_not_log_preprocessing_advice(tmp_path, caplog):
    pytest.importorskip("onnxruntime.quantization")
    from speechconv.export import export_spotter
    from speechconv.pretrained import load_pretrained

    spotter = load_pretrained("hello_small")
    with caplog.at_level(logging.WARNING):
        export_spotter(spotter, str(tmp_path / "step.onnx"), "onnx", None, "int8", None)
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]


# --- caches -----------------------------------------------------------------------------------------


def test_test_suite_caches_are_outside_home():
    home = Path.home().resolve()
    for name in ("XDG_CACHE_HOME", "KOKORO_JA_CACHE", "MPLCONFIGDIR"):
        assert name in os.environ, name
        assert home not in Path(os.environ[name]).resolve().parents, f"{name}={os.environ[name]}"


def test_phoneme_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    from speechconv.data import confusables

    monkeypatch.delenv("SPEECHCONV_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert confusables.cache_dir() == tmp_path / "xdg" / "speechconv"

    monkeypatch.setattr(confusables, "_espeak_version", lambda: "test")
    monkeypatch.setattr(confusables, "phonemize", lambda words, voice: {w: tuple(w) for w in words})
    assert confusables.phoneme_table(["abc"]) == {"abc": ("a", "b", "c")}
    assert [p.parent for p in (tmp_path / "xdg").rglob("phonemes-*.json")] == [tmp_path / "xdg" / "speechconv"]

    monkeypatch.setenv("SPEECHCONV_CACHE", str(tmp_path / "own"))
    assert confusables.cache_dir() == tmp_path / "own"
