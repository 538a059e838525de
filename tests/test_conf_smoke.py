"""Every config in conf/ trains for two steps through ``speechconv train``, with its own data section.

Each run starts in an empty working folder that holds tiny stand-ins of exactly the files the config's
data section names (manifests of a few generated clips per label, generated noise in the noise folder,
MNIST IDX files). The data module class and its arguments (labels, augmentation, sample rate, clip
length, validation split, ...) are the config's; only trainer settings (epochs, batch limits, output
folders), ``batch_size`` and ``num_workers`` change. ``test_recipes_write_what_configs_read`` runs the
recipes' prepare stages on miniature datasets and checks that they write the files the configs read.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from speechconv.audio import save_audio
from speechconv.cli import train as train_command
from speechconv.data.augment import AUDIO_SUFFIXES
from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest
from speechconv.data.noise_gen import write_noise_set
from speechconv.training import AudioClassifier, ImageClassifier
from speechconv.training.datamodules import synthetic_clip, synthetic_images

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CONFIGS = sorted(CONF.glob("*.yaml"))
BATCH = 4
STEPS = 2  # training steps, and validation/test batches (a limit of 1 reaches the Trainer as 1.0, i.e. 100 %)


def speechconv_train(args: list[str]) -> int:
    """``speechconv train ARGS`` through the subcommand's own parser (as ``speechconv.cli.main`` builds it)."""
    parser = argparse.ArgumentParser(prog="speechconv")
    train_command.register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(["train", *args])
    return namespace.func(namespace)


def is_audio(config: dict) -> bool:
    return config["model"]["class_path"].endswith("AudioClassifier")


def data_paths(data: dict) -> list[str]:
    """Every file or folder that a data section reads."""
    args = data["init_args"]
    if data["class_path"].endswith("AudioManifestDataModule"):
        paths = [args[key] for key in ("train_manifest", "val_manifest", "test_manifest") if args.get(key)]
        augment = args.get("augment") or []
        for item in [augment] if isinstance(augment, dict) else augment:
            assert "noise" not in item, "teach the smoke test about noise file lists"
            if item.get("noise_dir"):
                paths.append(item["noise_dir"])
        return paths
    if data["class_path"].endswith("MNISTDataModule"):
        return [args["data_dir"]]
    raise AssertionError(f"teach the smoke test about {data['class_path']}")


# ------------------------------------------------------------------ stand-ins of the configs' inputs


def write_clip_manifest(path: Path, labels: list[str], sample_rate: int, per_label: int, seed: int) -> None:
    """A manifest of ``per_label`` generated 0.4 s clips per label (label 0 noise, others tones/chirps)."""
    clips = path.parent / f"{path.stem}_clips"
    generator = torch.Generator().manual_seed(seed)
    entries = []
    for k, label in enumerate(labels):
        for i in range(per_label):
            wave, start, end = synthetic_clip(k, sample_rate, int(0.4 * sample_rate), generator)
            clip = clips / f"{k:02d}_{i}.wav"
            clip.parent.mkdir(parents=True, exist_ok=True)
            save_audio(clip, wave.clamp(-1, 1), sample_rate)
            entries.append(ManifestEntry(path=str(clip.resolve()), label=label, duration=0.4))
    write_manifest(path, entries)


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 IDX file: magic 0x0000080N (N = number of dimensions), big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@functools.lru_cache(maxsize=None)
def mnist_files(n_train: int, n_test: int) -> dict[str, bytes]:
    files = {}
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_images(n, 10, 28, 1, seed)
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(images[:, 0].numpy())
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(labels.numpy())
    return files


def write_stand_ins(data: dict) -> None:
    """Tiny versions of the files the data section reads, at the paths it names (relative to the cwd)."""
    args = data["init_args"]
    if data["class_path"].endswith("AudioManifestDataModule"):
        labels, rate = args["labels"], int(args["sample_rate"])
        per_label = math.ceil(STEPS * BATCH / len(labels))
        for seed, key in enumerate(("train_manifest", "val_manifest", "test_manifest")):
            if args.get(key):
                write_clip_manifest(Path(args[key]), labels, rate, per_label, seed)
        augment = args.get("augment") or []
        for item in [augment] if isinstance(augment, dict) else augment:
            if item.get("noise_dir"):
                write_noise_set(item["noise_dir"], seconds=2.0, sample_rate=rate, seed=0)
    else:  # MNIST: the last val_split training images are the validation set, the rest STEPS batches
        folder = Path(args["data_dir"])
        folder.mkdir(parents=True)
        for name, content in mnist_files(int(args["val_split"]) + STEPS * BATCH, STEPS * BATCH).items():
            (folder / name).write_bytes(content)


def smoke_config(path: Path, out: Path) -> dict:
    """The config with tiny trainer limits, every output path under ``out``, and a smaller batch."""
    config = yaml.safe_load(path.read_text())
    trainer = config["trainer"]
    trainer.update(max_epochs=1, limit_train_batches=STEPS, limit_val_batches=STEPS, limit_test_batches=STEPS,
                   default_root_dir=str(out), enable_progress_bar=False, enable_model_summary=False,
                   log_every_n_steps=1)
    for logger in trainer.get("logger") or []:
        logger["init_args"]["save_dir"] = str(out)
    for callback in trainer.get("callbacks") or []:
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback["init_args"]["dirpath"] = str(out / "checkpoints")
    config["data"]["init_args"].update(batch_size=BATCH, num_workers=0)
    config["num_threads"] = 1
    return config


# ------------------------------------------------------------------ tests


def test_every_recipe_has_configs():
    names = {p.stem for p in CONFIGS}
    assert {"mnist_lenet5", "mnist_lenet5_aug", "fsdd_tdnn", "fsdd_freq_cnn",
            "speech_commands_ds_cnn", "speech_commands_tc_resnet"} <= names
    # The hello keyword model is trained by `speechconv train-keyword hello` (its template is in the package).
    assert not any(name.startswith("hello_") for name in names)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_reads_only_what_a_recipe_writes(path):
    config = yaml.safe_load(path.read_text())
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert "Inputs:" in header and re.search(r"recipes/\w+/(prepare\.py|run\.sh)", header)
    for name in data_paths(config["data"]):
        assert not os.path.isabs(name) and ".." not in Path(name).parts and name.startswith("runs/"), name
        # The header names the path (or its folder) next to the command that writes it.
        assert name in header or f"{Path(name).parent.as_posix()}/" in header, name


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_trains_two_steps(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's relative data paths resolve under tmp_path
    config = smoke_config(path, tmp_path / "run")
    original = yaml.safe_load(path.read_text())["data"]
    expected = copy.deepcopy(original)
    expected["init_args"].update(batch_size=BATCH, num_workers=0)
    assert config["data"] == expected  # the config's own data module and arguments
    write_stand_ins(config["data"])
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    assert speechconv_train(["--config", str(config_file)]) == 0

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == STEPS and checkpoint["epoch"] == 0
    # The checkpoint alone rebuilds the module, with identical weights.
    cls = AudioClassifier if is_audio(config) else ImageClassifier
    module = cls.load_from_checkpoint(last, map_location="cpu")
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, checkpoint["state_dict"][key])
    if cls is AudioClassifier:
        assert all(key.startswith("spotter.") for key in checkpoint["state_dict"])
        assert list(module.spotter.labels) == config["model"]["init_args"]["labels"]
    # test_after_fit evaluated the best checkpoint and drew its confusion matrix.
    (confusion,) = (tmp_path / "run").rglob("confusion_test.json")
    assert json.loads(confusion.read_text())["total"] == STEPS * BATCH and confusion.with_suffix(".png").is_file()
    assert (tmp_path / "run" / "csv").is_dir() and (tmp_path / "run" / "tensorboard").is_dir()
    # Everything was written under tmp_path: the stand-ins, the run, nothing else.
    assert {p.name for p in tmp_path.iterdir()} == {"runs", "run", "config.yaml"}


# ------------------------------------------------------------------ the recipes write those inputs


def _load_prepare(recipe: str):
    spec = importlib.util.spec_from_file_location(f"conf_smoke_{recipe}", ROOT / "recipes" / recipe / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wav(path: Path, rate: int, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_audio(path, np.random.default_rng(seed).normal(0, 0.1, int(rate * seconds)), rate)


def _check_inputs(config_path: Path, replace: tuple[str, str] | None = None) -> None:
    """The files the config reads exist (as its recipe's prepare stage wrote them) and fit its labels."""
    data = yaml.safe_load(config_path.read_text())["data"]
    args = data["init_args"]
    for key in ("train_manifest", "val_manifest", "test_manifest"):
        name = args[key] if replace is None else args[key].replace(*replace)
        labels = {entry.label for entry in read_manifest(name)}
        assert labels and labels <= set(args["labels"]), (config_path.name, name, labels)
    for item in args["augment"]:
        if "noise_dir" in item:
            assert any(f.suffix in AUDIO_SUFFIXES for f in Path(item["noise_dir"]).iterdir()), item


def test_recipes_write_what_configs_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # FSDD: {digit}_{speaker}_{index}.wav; run.sh calls prepare.py --root FSDD_ROOT --out runs/fsdd
    for digit in range(10):
        for speaker in ("george", "theo"):
            for index in (0, 5, 10):
                _wav(Path("fsdd/recordings") / f"{digit}_{speaker}_{index}.wav", 8000, 0.3, digit)
    assert _load_prepare("fsdd").main(["--root", "fsdd", "--out", "runs/fsdd"]) == 0
    for config in sorted(CONF.glob("fsdd_*.yaml")):
        _check_inputs(config)
        _check_inputs(config, ("runs/fsdd/official/", "runs/fsdd/speaker/"))  # run.sh's speaker protocol
    assert "generated" in Path("runs/fsdd/noise/SOURCE.txt").read_text()

    # Speech Commands: WORD/*.wav, _background_noise_/, the split lists; run.sh: prepare.py SC_ROOT --out ...
    prepare = _load_prepare("speech_commands")
    listed = {"validation": [], "testing": []}
    for word in (*prepare.WORDS, "cat"):
        for i, split in enumerate(("train", "validation", "testing")):
            name = f"{word}/spk{i}_nohash_0.wav"
            _wav(Path("sc") / name, 16000, 0.3, i)
            if split in listed:
                listed[split].append(name)
    _wav(Path("sc/_background_noise_/white_noise.wav"), 16000, 2.0, 0)
    for kind, names in listed.items():
        Path(f"sc/{kind}_list.txt").write_text("\n".join(names) + "\n")
    assert prepare.main(["sc", "--out", "runs/speech_commands/data"]) == 0
    for config in sorted(CONF.glob("speech_commands_*.yaml")):
        _check_inputs(config)
    assert [p.name for p in Path("runs/speech_commands/data/noise").glob("*.wav")] == ["white_noise.wav"]

    # MNIST: the configs read runs/mnist/data, which recipes/mnist_lenet5/run.sh links to MNIST_DIR.
    run_sh = (ROOT / "recipes/mnist_lenet5/run.sh").read_text()
    for config in sorted(CONF.glob("mnist_*.yaml")):
        assert yaml.safe_load(config.read_text())["data"]["init_args"]["data_dir"] == "runs/mnist/data"
    assert "data=runs/mnist/data" in run_sh and 'ln -sfn "$(cd "$mnist_dir" && pwd)" "$data"' in run_sh
