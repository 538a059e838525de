"""``speechconv train`` stopped by SIGTERM exits non-zero, saves last.ckpt, and resumes from it."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import yaml

# A callback that sends SIGTERM to its own process at the end of a given training step: the signal
# arrives mid-epoch, at a known step, through the same handler as a scheduler's `kill -TERM`.
SIGTERM_CALLBACK = '''
import os, signal
from lightning.pytorch import Callback

class SigtermAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)
'''


def tiny_config(out, sigterm_step: int | None) -> dict:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True}}]
    if sigterm_step is not None:
        callbacks.append({"class_path": "sigterm_at.SigtermAt", "init_args": {"step": sigterm_step}})
    return {
        "seed_everything": 0,
        "num_threads": 1,
        "trainer": {"max_epochs": 2, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "num_sanity_val_steps": 0, "default_root_dir": str(out), "callbacks": callbacks},
        "model": {"class_path": "speechconv.training.ImageClassifier",
                  "init_args": {"model": {"name": "lenet5", "num_classes": 4}}},
        "data": {"class_path": "speechconv.training.SyntheticImageDataModule",
                 "init_args": {"num_classes": 4, "n_train": 16, "n_val": 4, "n_test": 4, "batch_size": 4}},
    }


def speechconv_train(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "speechconv.cli.main", "train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_sigterm_mid_epoch_exits_nonzero_and_resume_finishes(tmp_path):
    (tmp_path / "sigterm_at.py").write_text(SIGTERM_CALLBACK)
    out = tmp_path / "run"
    interrupted = tmp_path / "interrupted.yaml"
    interrupted.write_text(yaml.safe_dump(tiny_config(out, sigterm_step=6)))  # 4 batches per epoch: epoch 1

    stopped = speechconv_train(["fit", "--config", str(interrupted)], tmp_path)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    last = out / "checkpoints" / "last.ckpt"
    assert f"speechconv: training stopped by SIGTERM; resume with --ckpt_path {last}" in stopped.stderr
    saved = torch.load(last, weights_only=True, map_location="cpu")
    assert (saved["epoch"], saved["global_step"]) == (1, 6)

    resumed_config = tmp_path / "resume.yaml"
    resumed_config.write_text(yaml.safe_dump(tiny_config(out, sigterm_step=None)))
    resumed = speechconv_train(["fit", "--config", str(resumed_config), "--ckpt_path", str(last)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Tip:" not in resumed.stderr  # Lightning's advertising is filtered
    finished = torch.load(last, weights_only=True, map_location="cpu")
    assert finished["global_step"] == 8  # 2 epochs x 4 batches: the resumed run did the remaining 2
