"""Without PyTorch (the core install) the commands that need it say so in one line, before their module is
imported; detect, listen, info and evaluate stay available. PyTorch is hidden in a fresh interpreter: ``sys.modules``
entries of ``None`` make ``importlib.util.find_spec`` return None and ``import`` raise ImportError, as an
absent package does."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechconv.cli.main import COMMANDS, TORCH_FREE, missing_extra

HIDDEN = ("torch", "torchaudio", "torchvision", "lightning", "pytorch_lightning")
WITHOUT_TORCH = (
    "import sys\n"
    f"for name in {HIDDEN!r}:\n"
    "    sys.modules[name] = None\n"
    "from speechconv.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def without_torch(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_the_torch_free_commands_are_commands():
    assert TORCH_FREE <= set(COMMANDS)
    assert TORCH_FREE == {"detect", "listen", "info", "evaluate"}


@pytest.mark.parametrize("args", [["train", "fit", "--config", "conf/x.yaml"], ["train", "--help"], ["export"],
                                  ["models"], ["inspect", "tdnn"], ["train-keyword", "hey toaster"],
                                  ["viz", "filters"]])
def test_commands_needing_torch_say_so_in_one_line(args):
    proc = without_torch(*args)
    command = next(a for a in args if not a.startswith("-"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f'speechconv {command}: needs PyTorch; pip install "speechconv[train]"\n'
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["info", "--help"], ["--help", "train"]])
def test_help_version_and_info_help_work_without_torch(args):
    proc = without_torch(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(("usage: speechconv", "speechconv ")) and proc.stderr == ""


def test_info_runs_without_torch(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    proc = without_torch("info", "a.wav", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "a.wav" in proc.stdout and "16000" in proc.stdout


def test_with_torch_nothing_is_missing():
    pytest.importorskip("torch")
    assert all(missing_extra([name]) is None for name in COMMANDS)
