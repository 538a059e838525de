"""Data modules, clip placement, optimizers, the train CLI and the recipe preparation scripts."""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from speechconv.cli import train as train_command
from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest
from speechconv.errors import ConfigError
from speechconv.training import AudioManifestDataModule, MNISTDataModule
from speechconv.training.cli import with_subcommand
from speechconv.training.datamodules import MNIST_MEAN, MNIST_STD, place_clip, speech_end
from speechconv.training.optim import build_optimizer, build_scheduler

ROOT = Path(__file__).resolve().parents[1]


def _load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / name / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speechconv_train(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="speechconv")
    train_command.register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(["train", *args])
    return namespace.func(namespace)


# ------------------------------------------------------------------ clip placement


def test_place_clip_pads_with_event_end_inside():
    wave = torch.arange(1, 101, dtype=torch.float32)
    clip, start, end = place_clip(wave, 160, (10, 90), None, end_margin=20)
    # evaluation: audio starts at 160 - 100 - 20 = 40, so the file's samples sit at [40, 140)
    assert clip[40].item() == 1 and clip[139].item() == 100 and clip[:40].abs().sum() == 0
    assert (start, end) == (50, 130)
    for seed in range(30):
        clip, start, end = place_clip(wave, 160, (10, 90), torch.Generator().manual_seed(seed), 20)
        offset = int((clip != 0).nonzero()[0])
        assert 0 <= offset <= 60 and torch.equal(clip[offset: offset + 100], wave)
        assert (start, end) == (10 + offset, 90 + offset)


def test_place_clip_crops_around_the_event_end():
    wave = torch.arange(1000, dtype=torch.float32)
    clip, start, end = place_clip(wave, 200, (500, 700), None, end_margin=50)
    assert clip[0].item() == 550 and len(clip) == 200  # event end 700 lands 50 samples before the clip end
    assert (start, end) == (0, 150)
    for seed in range(30):
        clip, start, end = place_clip(wave, 200, (500, 700), torch.Generator().manual_seed(seed), 50)
        first = int(clip[0])
        assert 500 <= first <= 699  # the event end (sample 699) stays inside the clip
        assert torch.equal(clip, wave[first: first + 200]) and end == min(200, 700 - first)


def test_speech_end_finds_last_loud_frame():
    sr = 16000
    wave = torch.zeros(sr)
    wave[3000:9000] = torch.sin(torch.arange(6000) * 0.3)
    assert speech_end(wave, sr) == 9120  # end of the 10 ms frame holding sample 8999


# ------------------------------------------------------------------ audio data module


def _write_wav(path: Path, wave: np.ndarray, sr: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
    return str(path)


def test_audio_manifest_datamodule(tmp_path):
    rng = np.random.default_rng(0)
    sr = 8000
    entries = []
    for i in range(6):
        length = sr // 2 if i % 2 else 2 * sr  # short clips get padded, long ones cropped
        path = _write_wav(tmp_path / "audio" / f"c{i}.wav", rng.normal(0, 0.1, length), sr)
        params = {"start": 0.5, "end": 1.2} if length > sr else {}
        entries.append(ManifestEntry(path=path, label="kw" if i % 3 else "_background_", params=params))
    write_manifest(tmp_path / "train.jsonl", entries)
    write_manifest(tmp_path / "val.jsonl", entries[:4])
    data = AudioManifestDataModule(str(tmp_path / "train.jsonl"), str(tmp_path / "val.jsonl"),
                                   labels=["_background_", "kw"], sample_rate=16000, clip_seconds=1.0,
                                   batch_size=3, augment=[{"name": "gain", "db": [-6, 6]}], seed=5)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert batch["wave"].shape == (3, 16000) and batch["label"].tolist() == [0, 1, 1]
    again = next(iter(data.val_dataloader()))
    assert torch.equal(batch["wave"], again["wave"])  # evaluation placement is deterministic
    train = data.datasets["train"]
    first, repeat, later = train[(0, 2)], train[(0, 2)], train[(1, 2)]
    assert torch.equal(first["wave"], repeat["wave"])  # seeded by (seed, epoch, index)
    assert not torch.equal(first["wave"], later["wave"])
    # The long clip's event (0.5-1.2 s, resampled to 16 kHz) ends inside the 1-s clip.
    long_clip = train[(3, 0)]
    assert 0 < long_clip["end"] <= 16000 and long_clip["start"] < long_clip["end"]
    bad = AudioManifestDataModule(str(tmp_path / "train.jsonl"), labels=["_background_", "other"])
    with pytest.raises(ConfigError, match="label 'kw' is not one of"):
        bad.setup("fit")


def test_recording_augment_runs_before_the_cut_and_moves_the_event(tmp_path):
    sr = 16000
    wave = np.zeros(2 * sr)
    t = np.arange(int(0.4 * sr)) / sr
    wave[int(1.2 * sr): int(1.6 * sr)] = 0.5 * np.sin(2 * np.pi * 300 * t)  # the "keyword": 1.2-1.6 s
    path = _write_wav(tmp_path / "kw.wav", wave, sr)
    write_manifest(tmp_path / "train.jsonl", [ManifestEntry(path=path, label="kw", params={"start": 1.2, "end": 1.6})])
    manifest = str(tmp_path / "train.jsonl")
    data = AudioManifestDataModule(manifest, manifest, labels=["_background_", "kw"], sample_rate=sr,
                                   clip_seconds=1.0, recording_augment=[{"name": "tempo", "rate": 0.5}])
    data.setup("fit")
    for epoch in range(4):
        item = data.datasets["train"][(epoch, 0)]
        start, end = int(item["start"]), int(item["end"])
        assert item["wave"].shape == (sr,) and 0 < end <= sr
        loud = np.flatnonzero(item["wave"].abs().numpy() > 0.05)
        assert abs(loud[-1] - end) < 0.02 * sr  # the moved span still ends where the tone does
        if start > 0:
            assert (end - start) / sr == pytest.approx(0.8, abs=0.01)  # 0.4 s at half the rate
    with pytest.raises(ConfigError, match="TempoPerturb rate"):
        AudioManifestDataModule(manifest, manifest, labels=["_background_", "kw"],
                                recording_augment=[{"name": "tempo", "rate": -1}]).setup("fit")


# ------------------------------------------------------------------ MNIST


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_datamodule_never_downloads(tmp_path):
    from speechconv.data.readers import DatasetError

    with pytest.raises(DatasetError, match="never downloads"):
        MNISTDataModule(str(tmp_path / "empty"), batch_size=4).prepare_data()
    assert not (tmp_path / "empty").exists()


def test_mnist_datamodule_reads_idx_pads_and_normalizes(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (30, 28, 28))
    test = rng.integers(0, 256, (10, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(30) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    data = MNISTDataModule(str(tmp_path), batch_size=4, val_split=6, pad_to=32)
    data.prepare_data()  # files exist
    data.setup("fit")
    data.setup("test")
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (24, 6, 10)
    image, label = data.val_set[0]  # first validation image = training image 24
    assert image.shape == (1, 32, 32) and label == 24 % 10
    expected = (torch.from_numpy(train[24]).float() / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(image[0, 2:30, 2:30], expected)
    torch.testing.assert_close(image[0, :2], torch.full((2, 32), -MNIST_MEAN / MNIST_STD))
    images, labels = next(iter(data.test_dataloader()))
    assert images.shape == (4, 1, 32, 32) and labels.tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------ optimizers and schedules


def test_optimizer_and_scheduler_builders():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(params, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert isinstance(build_optimizer(params, {"name": "rmsprop", "lr": 0.01}), torch.optim.RMSprop)
    plateau = build_scheduler(sgd, {"name": "plateau", "factor": 0.5, "patience": 1})
    assert plateau["monitor"] == "val/loss"
    assert isinstance(plateau["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    cosine = build_scheduler(sgd, {"name": "cosine"}, max_epochs=10)["scheduler"]
    lrs = []
    for _ in range(10):
        lrs.append(sgd.param_groups[0]["lr"])
        sgd.step()
        cosine.step()
    assert lrs == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 10)) for e in range(10)])
    assert build_scheduler(sgd, None) is None
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer(params, {"name": "lbfgsx"})
    with pytest.raises(ConfigError, match="bad options for optimizer"):
        build_optimizer(params, {"name": "adam", "momentum": 0.9})


# ------------------------------------------------------------------ speechconv train


def test_with_subcommand_defaults_to_fit():
    assert with_subcommand(["--config", "a.yaml"]) == ["fit", "--config", "a.yaml"]
    assert with_subcommand(["test", "--config", "a.yaml"]) == ["test", "--config", "a.yaml"]
    with pytest.raises(ConfigError, match="needs a config"):
        speechconv_train([])


def _image_config(out: Path) -> dict:
    return {
        "seed_everything": 0,
        "num_threads": 1,
        "trainer": {"max_epochs": 1, "default_root_dir": str(out), "logger": False, "enable_progress_bar": False,
                    "enable_model_summary": False, "deterministic": True,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(out / "ckpt"), "save_last": True}}]},
        "model": {"class_path": "speechconv.training.ImageClassifier",
                  "init_args": {"model": {"name": "lenet5", "num_classes": 3},
                                "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}}},
        "data": {"class_path": "speechconv.training.SyntheticImageDataModule",
                 "init_args": {"num_classes": 3, "n_train": 12, "n_val": 4, "n_test": 4, "batch_size": 4}},
    }


def test_train_cli_passes_lightning_options_through(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_image_config(tmp_path / "run")))
    assert speechconv_train(["--config", str(config)]) == 0
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3
    # --ckpt_path last and --trainer.* overrides reach LightningCLI: training continues to epoch 2.
    assert speechconv_train(["--config", str(config), "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 6
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        speechconv_train(["--config", str(config), "--model.init_args.model", "{name: nope}"])


# ------------------------------------------------------------------ recipes


def test_speech_commands_prepare_on_fake_layout(tmp_path):
    prepare = _load_recipe("speech_commands")
    root = tmp_path / "sc"
    rng = np.random.default_rng(0)
    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "dog"]
    listed = {"validation": [], "testing": []}
    for word in words:
        for i in range(10):
            name = f"{word}/spk{i}_nohash_0.wav"
            _write_wav(root / name, rng.normal(0, 0.1, 4000), 16000)
            if i == 8:
                listed["validation"].append(name)
            if i == 9:
                listed["testing"].append(name)
    _write_wav(root / "_background_noise_" / "white.wav", rng.normal(0, 0.1, 48000), 16000)
    for kind, names in listed.items():
        (root / f"{kind}_list.txt").write_text("\n".join(names) + "\n")
    out = tmp_path / "manifests"
    assert prepare.main([str(root), "--out", str(out)]) == 0
    train = read_manifest(out / "train.jsonl")
    counts = {label: sum(e.label == label for e in train) for label in prepare.LABELS}
    # 80 known training clips -> 10 % unknown (8 of the 16 cat/dog clips) and 10 % silence (8)
    assert counts == {"_silence_": 8, "_unknown_": 8, **{w: 8 for w in prepare.WORDS}}
    test = read_manifest(out / "test.jsonl")
    assert {e.label for e in test} == set(prepare.LABELS) and len(test) == 10 + 1 + 1
    silence = [e for e in train if e.label == "_silence_"]
    assert all(0 <= e.params["start"] and e.params["end"] - e.params["start"] == pytest.approx(1.0)
               and e.params["end"] <= 3.0 for e in silence)
    # The manifests feed the speech_commands config's data module.
    config = yaml.safe_load((ROOT / "conf" / "speech_commands_ds_cnn.yaml").read_text())["data"]["init_args"]
    config.update(train_manifest=str(out / "train.jsonl"), val_manifest=str(out / "val.jsonl"),
                  test_manifest=str(out / "test.jsonl"), batch_size=8, num_workers=0, augment=None)
    data = AudioManifestDataModule(**config)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["wave"].shape == (8, 16000) and batch["label"].max() < 12


def test_fsdd_prepare_splits(tmp_path):
    prepare = _load_recipe("fsdd")
    rec = tmp_path / "fsdd" / "recordings"
    for speaker in ("george", "theo"):
        for index in (0, 4, 5, 9, 10, 30):
            _write_wav(rec / f"3_{speaker}_{index}.wav", np.zeros(800), 8000)
    assert prepare.main(["--root", str(tmp_path / "fsdd"), "--out", str(tmp_path / "out")]) == 0

    def names(protocol, part):
        return sorted(Path(e.path).stem for e in read_manifest(tmp_path / "out" / protocol / f"{part}.jsonl"))

    assert names("official", "test") == ["3_george_0", "3_george_4", "3_theo_0", "3_theo_4"]
    assert names("official", "val") == ["3_george_5", "3_george_9", "3_theo_5", "3_theo_9"]
    assert names("official", "train") == ["3_george_10", "3_george_30", "3_theo_10", "3_theo_30"]
    assert all(n.startswith("3_theo") for n in names("speaker", "test")) and len(names("speaker", "test")) == 6
    assert names("speaker", "val") == ["3_george_0", "3_george_4"]
