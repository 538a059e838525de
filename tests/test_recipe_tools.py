"""Recipe helpers: the best checkpoint by validation loss, feature statistics of a manifest, run.sh stages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from speechconv.audio import save_audio
from speechconv.data.manifest import ManifestEntry, write_manifest
from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.training.recipe_tools import best_checkpoint, fit_global_stats

REPO = Path(__file__).resolve().parent.parent


def test_best_checkpoint_has_the_lowest_validation_loss(tmp_path):
    for name in ("epoch00-val_loss0.5000.ckpt", "epoch03-val_loss0.2136.ckpt", "epoch04-val_loss0.3000.ckpt",
                 "last.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert best_checkpoint(tmp_path).name == "epoch03-val_loss0.2136.ckpt"
    with pytest.raises(ConfigError, match="no epoch"):
        best_checkpoint(tmp_path / "empty")


def test_global_stats_equal_the_statistics_of_the_features(tmp_path):
    rng = np.random.default_rng(0)
    entries = []
    for i in range(3):
        path = tmp_path / f"{i}.wav"
        save_audio(path, (0.1 * (i + 1) * rng.standard_normal(8000)).astype(np.float32), 16000)
        entries.append(ManifestEntry(path=str(path), label="x"))
    write_manifest(tmp_path / "m.jsonl", entries)
    mean, std = fit_global_stats(tmp_path / "m.jsonl", n=3, seed=0)
    front = build_frontend({"name": "logmel", "n_mels": 40, "fmax": 7600.0})
    from speechconv.audio import load_audio

    feats = torch.cat([front(load_audio(e.path, 16000)[0][None])[0] for e in entries], dim=-1)
    np.testing.assert_allclose(mean, feats.mean(-1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, feats.std(-1).numpy(), rtol=1e-5, atol=1e-5)


def test_link_folder_links_each_file_once_with_unique_names(tmp_path):
    from speechconv.training.recipe_tools import link_folder

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = [tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav"]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]))
    folder = link_folder(tmp_path / "links", [str(f) for f in files])
    links = sorted(folder.iterdir())
    assert [p.name for p in links] == ["00000_x.wav", "00001_x.wav"]
    assert [p.read_bytes() for p in links] == [b"\x00", b"\x01"] and all(p.is_symlink() for p in links)
    assert link_folder(folder, [str(f) for f in files]) == folder and len(list(folder.iterdir())) == 2


def _run_sh_stages(tmp_path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text("set -euo pipefail\nSTAGES=(prepare train report)\n"
                      f"source {REPO / 'recipes' / 'stages.sh'}\n"
                      "for s in prepare train report; do if stage $s; then echo ran:$s; fi; done\n"
                      'echo "args:$*"\n')
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_run_sh_recipes_share_the_stage_convention(tmp_path):
    every = _run_sh_stages(tmp_path, "x", "--trainer.max_epochs", "1")
    assert every.stdout.split() == ["ran:prepare", "ran:train", "ran:report", "args:x", "--trainer.max_epochs", "1"]
    ranged = _run_sh_stages(tmp_path, "--stage", "train", "model", "--", "--stage", "kept")
    assert ranged.stdout.split() == ["ran:train", "ran:report", "args:model", "--", "--stage", "kept"]
    one = _run_sh_stages(tmp_path, "--stage", "train", "--stop-stage", "train")
    assert one.stdout.split() == ["ran:train", "args:"]
    bad = _run_sh_stages(tmp_path, "--stage", "nope")
    assert bad.returncode == 2 and "unknown stage 'nope'; choose from prepare train report" in bad.stderr
    for recipe in ("fsdd", "mnist_lenet5", "speech_commands"):
        text = (REPO / "recipes" / recipe / "run.sh").read_text()
        assert 'source "$(dirname "$0")/../stages.sh"' in text and "--stage S" in text
