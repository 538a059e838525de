"""Ensembles: the mean posterior of several detectors, as one model, front-end and spotter, and through
`speechconv train-keyword --ensemble`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.models.ensemble import mean_posterior_logits
from speechconv.pretrained import ensemble_spotter, load_pretrained, save_pretrained
from speechconv.streaming import KeywordSpotter, StreamingEngine
from speechconv.summary import summarize

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["negative", "toaster"]


def chunked(module, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    outputs, state = [], None
    for part in torch.split(x, sizes, dim=-1):
        y, state = module.stream(part, state)
        outputs.append(y)
    return torch.cat(outputs, dim=-1)


def test_mean_posterior_logits_softmax_to_the_mean_posterior():
    torch.manual_seed(0)
    logits = [torch.randn(3, 4, 7) * 5 for _ in range(3)]
    mean = sum(torch.softmax(x, dim=1) for x in logits) / 3
    assert torch.allclose(torch.softmax(mean_posterior_logits(logits), dim=1), mean, atol=1e-6)
    assert torch.allclose(mean_posterior_logits(logits[:1]), torch.log_softmax(logits[0], dim=1))


def test_ensemble_model_reads_each_members_features_and_streams_exactly():
    torch.manual_seed(0)
    members = [{"name": "tc_resnet", "dropout": 0.1}, {"name": "tc_resnet14", "in_features": 24}]
    model = build_model({"name": "ensemble", "in_features": 64, "num_classes": 2, "members": members}).eval()
    x = torch.randn(2, 64, 90)
    with torch.no_grad():
        expected = (torch.softmax(model.members[0](x[:, :40]), 1) + torch.softmax(model.members[1](x[:, 40:]), 1)) / 2
        offline = model(x)
        streamed = chunked(model, x, [5, 16, 1, 40, 28])
    assert torch.allclose(torch.softmax(offline, 1), expected, atol=1e-6)
    assert torch.allclose(streamed, offline, atol=1e-5)
    # the widest member sets the context; both members have stride 8
    assert model.receptive_field().size == max(m.receptive_field().size for m in model.members)
    assert model.frame_stride == 8 and model.output_frames(90) == model.members[0].output_frames(90)
    assert model.macs_per_second(100) == sum(m.macs_per_second(100) for m in model.members)
    # inspect: each member's rows grow their own receptive field from the input, not from the other member's
    last = {}
    for row in summarize(model, (64, 100)).rows:
        last[row.name.split(".")[1]] = row.field.size
    assert last == {str(i): m.receptive_field().size for i, m in enumerate(model.members)}


@pytest.mark.parametrize("config, message", [
    ({"members": []}, "non-empty list"),
    ({"members": [{"name": "tc_resnet"}, {"name": "tc_resnet"}], "in_features": 41}, "split equally"),
    ({"members": [{"name": "tc_resnet", "in_features": 30}, {"name": "tc_resnet", "in_features": 5}]}, "add up to 40"),
    ({"members": [{"name": "tc_resnet"}, {"name": "tdnn"}]}, "frame stride"),
    ({"members": [{"name": "ensemble"}]}, "not an ensemble"),
])
def test_ensemble_model_refuses_members_that_do_not_fit(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model({"name": "ensemble", **config})


def test_ensemble_frontend_stacks_member_features_of_one_mel_spectrogram():
    members = [{"name": "pcen", "n_mels": 40}, {"name": "pcen", "n_mels": 40, "alpha": 0.8, "s": 0.05},
               {"name": "logmel", "n_mels": 40, "normalization": "global", "global_mean": [1.0] * 40,
                "global_std": [2.0] * 40}]
    frontend = build_frontend({"name": "ensemble", "members": members})
    assert frontend.n_features == 120 and frontend.feature_sizes == [40, 40, 40]
    rng = np.random.default_rng(0)
    wave = torch.from_numpy(rng.normal(0, 0.1, 9000).astype(np.float32))[None]
    with torch.no_grad():
        offline = frontend(wave)
        expected = torch.cat([m(wave) for m in frontend.members], dim=1)
        streamed = chunked(frontend, wave, [100, 2000, 161, 6739])
    assert torch.equal(offline, expected)
    assert torch.allclose(streamed, offline, atol=1e-5)
    rebuilt = build_frontend(frontend.config)
    assert rebuilt.config == frontend.config
    with pytest.raises(ConfigError, match="hop_length"):
        build_frontend({"name": "ensemble", "members": [{"name": "pcen"}, {"name": "pcen", "hop_length": 320}]})
    utterance = build_frontend({"name": "ensemble", "members": [{"name": "logmel", "normalization": "utterance"}]})
    with pytest.raises(ConfigError, match="cannot stream"):
        utterance.stream(wave)


def small_spotter(seed: int, detector: dict | None = None) -> KeywordSpotter:
    """A randomly initialised PCEN + TC-ResNet8 spotter; seeds give different PCEN parameters too."""
    torch.manual_seed(seed)
    frontend = build_frontend({"name": "pcen", "n_mels": 40})
    with torch.no_grad():
        for parameter in frontend.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    model = build_model({"name": "tc_resnet", "in_features": 40, "num_classes": 2})
    model.config = {"name": "tc_resnet"}
    return KeywordSpotter(frontend, model, LABELS, detector or {"threshold": 0.7}).eval()


def test_ensemble_spotter_gives_the_members_mean_posterior_offline_streamed_and_saved(tmp_path):
    members = [small_spotter(seed) for seed in (1, 2, 3)]
    spotter = ensemble_spotter(members)
    assert spotter.detector == {"threshold": 0.7} and spotter.keyword == "toaster"
    rng = np.random.default_rng(1)
    wave = torch.from_numpy(rng.normal(0, 0.05, 24000).astype(np.float32))
    with torch.no_grad():
        expected = sum(m(wave) for m in members) / len(members)
        offline = spotter(wave)
    assert torch.allclose(offline, expected, atol=1e-6)

    engine = StreamingEngine(spotter)
    streamed = np.concatenate([engine.feed(part)[1] for part in torch.split(wave, [1000, 7000, 16000])])
    keyword = offline[0, spotter.keyword_index].numpy()
    np.testing.assert_allclose(streamed, keyword[: len(streamed)], atol=1e-5)

    save_pretrained(spotter, tmp_path / "model")
    loaded = load_pretrained(tmp_path / "model")
    with torch.no_grad():
        assert torch.equal(loaded(wave), offline)
    config = yaml.safe_load((tmp_path / "model" / "config.yaml").read_text())
    assert config["model"]["name"] == "ensemble" and len(config["model"]["members"]) == 3


def test_ensemble_spotter_needs_the_same_labels():
    other = small_spotter(2)
    other.labels = ["negative", "kettle"]
    other.keyword = "kettle"
    with pytest.raises(ConfigError, match="must agree"):
        ensemble_spotter([small_spotter(1), other])
    with pytest.raises(ConfigError, match="at least one"):
        ensemble_spotter([])


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                    reason="needs espeak-ng and flite (apt-get install espeak-ng flite)")
def test_train_keyword_ensemble_trains_members_with_their_seeds_and_packages_their_mean(tmp_path):
    out = tmp_path / "toaster"
    cmd = [sys.executable, "-m", "speechconv.cli.main", "train-keyword", "hey toaster", "--out", str(out),
           "--positives", "24", "--negatives", "24", "--engines", "espeak,flite", "--minutes", "0.1", "--quiet",
           "--seed", "3", "--ensemble", "2", "--representation", "spectrogram"]
    result = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, HOME=str(tmp_path)), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seeds, budgets = [], []
    for name in ("train.yaml", "train_member1.yaml"):
        config = yaml.safe_load((out / name).read_text())
        seeds.append(config["seed_everything"])
        budgets += [c["init_args"]["minutes"] for c in config["trainer"]["callbacks"]
                    if c["class_path"].endswith("TimeBudget")]
    assert seeds == [3, 4] and budgets == [0.1, 0.1]  # each member trains for --minutes

    results = json.loads((out / "work" / "eval" / "results.json").read_text())
    assert len(results["checkpoints"]) == 2 and "train_member1" in results["checkpoints"][1]
    packaged = load_pretrained(out)
    members = [load_pretrained(c) for c in results["checkpoints"]]
    wave = torch.from_numpy(np.random.default_rng(2).normal(0, 0.05, 16000).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(packaged(wave), (members[0](wave) + members[1](wave)) / 2, atol=1e-6)
    assert packaged.detector["threshold"] == results["detector"]["threshold"]
    assert "ensemble of 2 `tc_resnet` models trained with seeds 3-4" in (out / "README.md").read_text()
