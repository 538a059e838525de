"""The wake-word benchmark's run layout: per-seed training configs and the report over seeds and ensembles.

Works on written result files and a stand-in noise list; never reads the shared data folder."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "wakeword_benchmark"


@pytest.fixture()
def run(monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE))  # run.py imports its sibling protocol.py
    spec = importlib.util.spec_from_file_location("wakeword_benchmark_run", RECIPE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("protocol", None)


def test_each_seed_is_its_own_run_and_ema_appends_a_callback(run, tmp_path, monkeypatch):
    monkeypatch.setattr(run.protocol, "noise_files", lambda shared: (["train_noise.wav"], ["eval_noise.wav"]))
    args = argparse.Namespace(work=tmp_path, shared=tmp_path, variant="ema", seed=0, max_time="", epochs=0)
    configs = {seed: run.training_config(args, "alexa", seed) for seed in (0, 2)}
    for seed, config in configs.items():
        folder = tmp_path / "runs" / "ema" / "alexa" / f"seed{seed}"
        assert config["seed_everything"] == seed and config["data"]["init_args"]["seed"] == seed
        assert config["trainer"]["default_root_dir"] == str(folder)
        # both seeds read the variant's one set of manifests
        assert config["data"]["init_args"]["train_manifest"] == str(tmp_path / "runs/ema/alexa/manifests/train.jsonl")
        checkpoint, ema = config["trainer"]["callbacks"]  # the template's checkpoint, then the appended average
        assert checkpoint["init_args"]["dirpath"] == str(folder / "checkpoints")
        assert ema["class_path"].endswith("EMAWeightAveraging") and ema["init_args"]["decay"] == 0.998
        assert config["model"]["init_args"]["frontend"]["name"] == "pcen"
        assert config["data"]["init_args"]["augment"][-3]["noise"] == ["train_noise.wav"]


def _result(variant: str, keyword: str, frr: dict[str, float], **extra) -> dict:
    return {"detector": extra.pop("detector", variant), "variant": variant, "keyword": keyword, "hours": 2.4,
            "keywords": 329, **{f"frr_at_{k}": v for k, v in frr.items()},
            "det": {"fa_per_hour": [0.0, 1.0], "frr": [0.9, 0.5]}, **extra}


def _write(path: Path, data: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(data))


def test_report_averages_seeds_and_lists_the_ensemble(run, tmp_path, capsys):
    runs = tmp_path / "runs"
    _write(runs / "pcen/alexa/seed0/eval", _result("pcen", "alexa", {"0.5": 0.50, "1": 0.40}, seed=0,
                                                   det={"fa_per_hour": [0.0, 3.0, 8.0], "frr": [0.9, 0.3, 0.1]}))
    _write(runs / "pcen/alexa/seed1/eval", _result("pcen", "alexa", {"0.5": 0.70, "1": 0.60}, seed=1))
    _write(runs / "pcen/alexa/ensemble/eval",
           _result("pcen", "alexa", {"0.5": 0.45, "1": 0.35}, detector="pcen ensemble", seeds=[0, 1]))
    _write(runs / "baseline/alexa/seed0/eval", _result("baseline", "alexa", {"0.5": 0.9, "1": None}, seed=0))
    run.stage_report(argparse.Namespace(work=tmp_path))
    table = (tmp_path / "report.md").read_text()
    at_1 = table.split("at <= 1 false alarms per hour")[1]
    rows = [line for line in at_1.splitlines() if line.startswith("| ")]
    assert rows[1] == "| baseline | n/a | - | - | - | n/a |"  # the sweep never reached 1 FA/h
    assert rows[2] == "| pcen | 50.0% (40-60, 2 seeds) | - | - | - | n/a |"
    assert rows[3] == "| pcen ensemble | 35.0% | - | - | - | n/a |"
    assert "| pcen ensemble | the mean score curve of the pcen seeds above |" in table
    assert (tmp_path / "det.png").is_file()
    # the diagnostic <= 5 FA/h table is read off the DET curves: 0.3 (seed 0) and 0.5 (seed 1)
    at_5 = [line for line in table.split("at <= 5 false alarms per hour")[1].splitlines() if line.startswith("| ")]
    assert "| pcen | 40.0% (30-50, 2 seeds) | - | - | - | n/a |" in at_5


def test_prose_synth_reads_only_the_training_speakers_transcripts(run, tmp_path, monkeypatch):
    from speechconv.data.manifest import ManifestEntry

    utterances = [ManifestEntry(path=f"{s}.flac", label="negative", text=f"words of speaker {s}",
                                engine="librispeech", speaker=s) for s in ("19", "1737", "460")]
    monkeypatch.setattr(run.protocol, "librispeech", lambda shared: utterances)
    calls = []
    monkeypatch.setattr(run, "speechconv", lambda *argv: calls.append(argv))
    args = argparse.Namespace(work=tmp_path, shared=tmp_path, keywords=["alexa"], synth_groups=["prose"],
                              force=False, seed=0, positives=0, negatives=0, workers=2)
    run.stage_synth(args)
    (argv,) = calls
    sentences = Path(argv[argv.index("--sentences") + 1])
    # speaker 1737 reads in the false-alarm stream: never a training text
    assert sentences.read_text().splitlines() == ["words of speaker 19", "words of speaker 460"]
    assert argv[argv.index("--sentence-share") + 1] == "0.8" and argv[argv.index("--n") + 1] == "0"
    assert argv[argv.index("--engines") + 1] == "piper,kokoro"


def test_active_seconds_skips_leading_and_trailing_quiet(run, tmp_path):
    import numpy as np
    import soundfile as sf

    sr = 16000
    rng = np.random.default_rng(0)
    wave = 0.001 * rng.standard_normal(2 * sr)  # noise 50 dB below the tone
    wave[int(0.7 * sr): int(1.1 * sr)] += 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(0.4 * sr)) / sr)
    sf.write(tmp_path / "clip.wav", wave, sr)
    assert run.active_seconds(tmp_path / "clip.wav") == pytest.approx(0.4, abs=0.011)


def test_slow_variant_stretches_whole_recordings(run, tmp_path, monkeypatch):
    monkeypatch.setattr(run.protocol, "noise_files", lambda shared: (["train_noise.wav"], ["eval_noise.wav"]))
    args = argparse.Namespace(work=tmp_path, shared=tmp_path, variant="noconf_slow", seed=0, max_time="", epochs=0)
    data = run.training_config(args, "alexa", 0)["data"]["init_args"]
    assert data["recording_augment"] == [{"name": "tempo", "rate": [0.65, 1.05], "p": 0.6}]
    assert [op["name"] for op in data["augment"]][0] == "speed"  # the clip chain is noconf's


def _fake_curves(seed: int):
    """A keyword stream (600 s, 10 keywords: the detector finds the even ones) and a negative stream (3000 s,
    three false alarms at 0.9), 10 frames per second, so 1 FA/h allows one false alarm."""
    from speechconv.evaluation.kws import KeywordSpan, StreamScores

    times = np.round(np.arange(1, 6001) * 0.1, 3)
    scores = np.full(len(times), 0.01)
    spans = [KeywordSpan(50.0 * i + 10, 50.0 * i + 10.6, "") for i in range(10)]
    for i, span in enumerate(spans):
        scores[int(round(span.end * 10)) - 1] = 0.95 if i % 2 == 0 else 0.3
    neg_times = np.round(np.arange(1, 30001) * 0.1, 3)
    neg_scores = np.full(len(neg_times), 0.01)
    neg_scores[[5000, 15000, 25000]] = 0.9
    return (StreamScores("kw", 600.0, spans, times=times, scores=scores),
            StreamScores("negatives", 3000.0, [], times=neg_times, scores=neg_scores))


def test_fusion_chooses_each_keywords_weight_on_the_others(run, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "evaluate_seed", lambda args, keyword, seed, write=True: _fake_curves(seed))
    monkeypatch.setattr(run, "FUSION_WEIGHTS", (0.0, 0.02, 0.05, 0.1))
    for keyword in ("alexa", "jarvis"):
        folder = tmp_path / "anchors" / keyword
        folder.mkdir(parents=True)
        # pocketsphinx finds every keyword (score 30) and nothing in the negative stream
        ends = np.array([50.0 * i + 10.6 for i in range(10)])
        np.savez(folder / f"pocketsphinx_{keyword}.npz", times=ends, starts=ends - 0.6, scores=np.full(10, 30.0))
        np.savez(folder / "pocketsphinx_negatives.npz", times=np.zeros(0), starts=np.zeros(0), scores=np.zeros(0))
        (folder / "pocketsphinx.json").write_text(json.dumps({"frr_at_1": 0.25}))
    args = argparse.Namespace(work=tmp_path, variant="noconf", seeds=[0, 1], keywords=["alexa", "jarvis"])
    run.stage_fusion(args)
    table = (tmp_path / "runs" / "noconf" / "fusion.md").read_text()
    # alone: the odd keywords (0.3) lie under the false alarms (0.9); at 0.02 they still do
    # (-0.85 + 0.6 < 2.2 - 1.6), at 0.05 every keyword clears every false alarm: the smallest such weight
    assert "| alexa | 0.05 | 50.0% (50.0%) | 0.0% (0.0%) | 50.0% (50.0%) | 0.0% (0.0%) | 25.0% |" in table
    assert "| mean | 50.0% | 50.0% | 0.0% | 0.0% |" in table
    assert (tmp_path / "runs" / "noconf" / "fusion.png").is_file()


def test_gating_compares_gated_searches_with_the_full_one(run, tmp_path, monkeypatch):
    """The gating stage's table: the detector alone, fused with the full search's hits, and fused with each
    gate's search (stood in for here: a gate that searches nothing leaves the floor everywhere)."""
    from speechconv.detect import fusion

    monkeypatch.setattr(run, "evaluate_seed", lambda args, keyword, seed, write=True: _fake_curves(seed))
    monkeypatch.setattr(run, "GATES", (0.2, 0.5))
    searched = {0.2: 900.0, 0.5: 360.0}

    def gated(wav, stream, keyphrase, gate):
        assert keyphrase == "alexa"
        floor = np.full(len(stream.scores), fusion.DEFAULT_FLOOR)
        if gate == 0.2:  # finds the hits: the same as the full search
            starts, ends, scores = (hits[wav.stem][k] for k in ("starts", "times", "scores"))
            return fusion.fuse(stream.scores, fusion.keyphrase_evidence(stream.times, starts, ends, scores)), \
                searched[gate], 10.0
        return fusion.fuse(stream.scores, floor), searched[gate], 4.0

    monkeypatch.setattr(run, "_gated_scores", gated)
    monkeypatch.setattr(run, "_search_rate", lambda wav, keyphrase: 300.0)
    monkeypatch.setattr(run, "_detector_rate", lambda args, keyword, seed, wav: 20.0)
    folder = tmp_path / "anchors" / "alexa"
    folder.mkdir(parents=True)
    ends = np.array([50.0 * i + 10.6 for i in range(10)])
    hits = {"alexa": {"times": ends, "starts": ends - 0.6, "scores": np.full(10, 30.0)},
            "negatives": {"times": np.zeros(0), "starts": np.zeros(0), "scores": np.zeros(0)}}
    for stem, arrays in hits.items():
        np.savez(folder / f"pocketsphinx_{stem}.npz", **arrays)
    args = argparse.Namespace(work=tmp_path, variant="noconf", seeds=[0], keywords=["alexa"], force=False)
    run.stage_gating(args)
    table = (tmp_path / "runs" / "noconf" / "gating.md").read_text()
    assert "| alexa | 50.0% (50.0%) | 0.0% (0.0%) | 0.0% (0.0%) | 50.0% (50.0%) |" in table
    hours = (600.0 + 3000.0) / 3600  # both streams; each gate searched 900 or 360 s of each
    assert f"| alexa | 20 s | 100%, 300 s | {100 * 1800 / 3600 / hours:.1f}%, {20 / hours:.0f} s | " \
           f"{100 * 720 / 3600 / hours:.1f}%, {8 / hours:.0f} s |" in table
    assert (tmp_path / "runs" / "noconf" / "alexa" / "seed0" / "gating" / "gate0.2.npz").is_file()
    # the default gate's evidence, recovered from its fused scores, at each weight: 0 is the detector alone,
    # the fusion's own weight gives the gate's column back
    weights = table.split("by weight at gate 0.2")[1]
    assert "| alexa | 50.0% |" in weights and "| mean | 50.0% |" in weights
    row = next(line for line in weights.splitlines() if line.startswith("| alexa |")).split(" | ")
    assert row[run.FUSION_WEIGHTS.index(0.075) + 1] == "0.0%"


def test_whisper_stage_trains_a_head_and_tables_it_beside_the_detector(run, tmp_path, monkeypatch):
    """The whisper stage with stand-in frames: a marker channel where a keyword is (training positives and
    the keyword stream's keywords), none in the negative stream; the head it trains finds every keyword."""
    import torch

    from speechconv.evaluation import streams as stream_module
    from speechconv.evaluation.kws import KeywordSpan
    from speechconv.training import whisper_head as head_module

    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(256, 12, 4, generator=generator)
    labels = torch.arange(256) % 2
    clips[labels == 1, 5:8, 0] += 8.0
    spans = [KeywordSpan(50.0 * i + 10, 50.0 * i + 10.6, "alexa") for i in range(10)]

    def stream(wav):
        frames = np.random.default_rng(1).standard_normal((30000 if wav.stem == "alexa" else 150000, 4))
        if wav.stem == "alexa":
            for span in spans:
                frames[int(span.start / 0.02): int(span.end / 0.02), 0] += 8.0
        return frames.astype(np.float32)

    monkeypatch.setattr(run, "_whisper_training_frames", lambda args, keyword, encoder: (clips, labels))
    monkeypatch.setattr(run, "_whisper_stream_frames", lambda args, encoder, wav: stream(wav))
    monkeypatch.setattr(run, "_whisper_cost", lambda args, encoder, head: 123.0)
    monkeypatch.setattr(stream_module, "stream_duration", lambda wav: 600.0 if wav.stem == "alexa" else 3000.0)
    monkeypatch.setattr(stream_module, "read_keyword_spans", lambda csv, keyword, group_by=None: spans)
    train = head_module.train_head
    monkeypatch.setattr(head_module, "train_head", lambda *a, **k: train(*a, **{**k, "lr": 1e-2, "batch_size": 64}))
    monkeypatch.setattr(run, "WHISPER_HEAD_EPOCHS", 20)
    seed0 = tmp_path / "runs" / "noconf" / "alexa" / "seed0" / "eval"
    seed0.mkdir(parents=True)
    (seed0 / "results.json").write_text(json.dumps({"frr_at_1": 0.5, "frr_at_0.5": 0.5}))
    anchors = tmp_path / "anchors" / "alexa"
    anchors.mkdir(parents=True)
    (anchors / "pocketsphinx.json").write_text(json.dumps({"frr_at_1": 0.6, "frr_at_0.5": 0.7}))
    args = argparse.Namespace(work=tmp_path, variant="noconf", seeds=[0, 1], keywords=["alexa"], force=False,
                              workers=0, whisper_live=True)
    monkeypatch.setattr(run, "_whisper_live_frames", lambda args, encoder, wav: (stream(wav), 45.0))
    run.stage_whisper(args)
    table = (tmp_path / "runs" / "noconf" / "whisper.md").read_text()
    # two heads, their ensemble; the detector column is the mean of the seeds whose results exist (seed 0)
    assert "| alexa | 0.0% (0.0%) | 0.0%, 0.0% | 0.0% (0.0%) | 50.0% (50.0%) | 60.0% | - |" in table
    assert "123 CPU s per hour" in table
    assert "| alexa | 0.0% (0.0%) | 0.0%, 0.0% |" in table.split("Live frames")[1]  # the same frames stood in
    assert "the encoder 45 CPU s per hour" in table
    folder = tmp_path / "runs" / "noconf" / "alexa" / "whisper" / "seed0"
    saved = torch.load(folder / "head.pt", weights_only=True)
    assert saved["config"]["dim"] == 4
    assert json.loads((folder / "results.json").read_text())["frr_at_1"] == 0.0
