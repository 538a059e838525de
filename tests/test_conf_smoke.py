"""Every config in conf/ trains for one short epoch on generated data, through ``speechconv train``.

The data section is swapped for the synthetic data modules (same labels, sample rate and clip
length); everything else (front-end, model, loss, optimizer, scheduler, callbacks) is the config's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml

from speechconv.cli import train as train_command
from speechconv.training import AudioClassifier, ImageClassifier

CONF = Path(__file__).resolve().parents[1] / "conf"
CONFIGS = sorted(CONF.glob("*.yaml"))


def speechconv_train(args: list[str]) -> int:
    """``speechconv train ARGS`` through the subcommand's own parser (as ``speechconv.cli.main`` builds it)."""
    parser = argparse.ArgumentParser(prog="speechconv")
    train_command.register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(["train", *args])
    return namespace.func(namespace)


def smoke_config(path: Path, out: Path) -> dict:
    """The config with synthetic data, tiny limits and every output path under ``out``."""
    config = yaml.safe_load(path.read_text())
    trainer = config["trainer"]
    trainer.update(max_epochs=1, limit_train_batches=2, limit_val_batches=1, limit_test_batches=1,
                   default_root_dir=str(out), enable_progress_bar=False, enable_model_summary=False,
                   log_every_n_steps=1)
    for logger in trainer.get("logger") or []:
        logger["init_args"]["save_dir"] = str(out)
    for callback in trainer.get("callbacks") or []:
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback["init_args"]["dirpath"] = str(out / "checkpoints")
    data = config["data"]["init_args"]
    if config["model"]["class_path"].endswith("AudioClassifier"):
        config["data"] = {"class_path": "speechconv.training.SyntheticAudioDataModule", "init_args": {
            "labels": data["labels"], "sample_rate": data["sample_rate"],
            "clip_seconds": min(float(data["clip_seconds"]), 1.0), "n_train": 8, "n_val": 4, "n_test": 4,
            "batch_size": 4}}
    else:
        model = config["model"]["init_args"]["model"]
        config["data"] = {"class_path": "speechconv.training.SyntheticImageDataModule", "init_args": {
            "num_classes": model.get("num_classes", 10), "channels": model.get("in_channels", 1),
            "image_size": data.get("pad_to", 32), "n_train": 8, "n_val": 4, "n_test": 4, "batch_size": 4,
            "augment": data.get("augment", False)}}
    config["num_threads"] = 1
    return config


def test_every_recipe_has_configs():
    names = {p.stem for p in CONFIGS}
    assert {"mnist_lenet5", "mnist_lenet5_aug", "fsdd_tdnn", "fsdd_freq_cnn", "hello_tdnn", "hello_tc_resnet",
            "speech_commands_ds_cnn", "speech_commands_tc_resnet"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_trains_one_epoch(path, tmp_path):
    config = smoke_config(path, tmp_path / "run")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    assert speechconv_train(["--config", str(config_file)]) == 0

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["epoch"] == 0
    # The checkpoint alone rebuilds the module, with identical weights.
    cls = AudioClassifier if config["model"]["class_path"].endswith("AudioClassifier") else ImageClassifier
    module = cls.load_from_checkpoint(last, map_location="cpu")
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, checkpoint["state_dict"][key])
    if cls is AudioClassifier:
        assert all(key.startswith("spotter.") for key in checkpoint["state_dict"])
        assert list(module.spotter.labels) == config["model"]["init_args"]["labels"]
    # test_after_fit evaluated the best checkpoint and drew its confusion matrix.
    (confusion,) = (tmp_path / "run").rglob("confusion_test.json")
    assert json.loads(confusion.read_text())["total"] == 4 and confusion.with_suffix(".png").is_file()
    assert (tmp_path / "run" / "csv").is_dir() and (tmp_path / "run" / "tensorboard").is_dir()
