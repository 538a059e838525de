"""The "hello" recipe, in stages; each stage reads what earlier stages wrote under ``--work``.

    python recipes/hello/run.py synth     --work exp/hello            # TTS corpus (speechconv synth)
    python recipes/hello/run.py prepare   --work exp/hello --shared ../shared/data
    python recipes/hello/run.py streams   --work exp/hello            # dev/test evaluation streams
    python recipes/hello/run.py train     --work exp/hello            # speechconv train --config ...
    python recipes/hello/run.py mine train --work exp/hello --run 2   # optional: hard negatives, retrain
    python recipes/hello/run.py train --run 3 --init-from train       # optional: continue from run 1
    python recipes/hello/run.py evaluate  --work exp/hello            # clip accuracy, FRR @ FA/h, DET
    python recipes/hello/run.py package   --work exp/hello            # -> speechconv/pretrained/hello
    python recipes/hello/run.py example                               # bundled example recording
    python recipes/hello/run.py all       --work exp/hello --shared ../shared/data

Several stages can be given at once (``prepare streams``); ``all`` runs every stage in order.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from speechconv.training import recipe_tools
from speechconv.training.recipe_tools import fit_global_stats

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
import evaluate as ev  # noqa: E402  (sibling modules: the script folder is on sys.path)
import prepare as prep  # noqa: E402

STAGES = ("synth", "prepare", "streams", "mine", "train", "evaluate", "package", "example")
STREAMS = {  # name: (split, with keywords, seed); keyword streams use every clip of the split once,
    "dev_keywords": ("dev", True, 11),  # negative-only streams last --dev-fa-hours / --test-fa-hours
    "dev_negatives": ("dev", False, 12),
    "test_keywords": ("test", True, 21),
    "test_negatives": ("test", False, 22),
}
SNR_DB = (5.0, 20.0)


def log(message: str) -> None:
    print(f"[hello] {message}", flush=True)


def speechconv(*args: str) -> None:
    """Run a ``speechconv`` subcommand in this interpreter's environment."""
    cmd = [sys.executable, "-m", "speechconv.cli.main", *args]
    log("$ speechconv " + " ".join(args))
    subprocess.run(cmd, check=True, cwd=REPO)


# ------------------------------------------------------------------------------------ stages


def stage_synth(args) -> None:
    out = args.work / "synth"
    if (out / "manifest.jsonl").is_file() and not args.force:
        log(f"{out}/manifest.jsonl exists; skipping (use --force to redo)")
        return
    speechconv("synth", "--keyword", "hello", "--out", str(out), "--n", str(args.positives),
               "--negatives", str(args.negatives), "--engines", "espeak,flite,festival,piper",
               "--seed", str(args.seed), "--workers", str(args.workers))


def stage_prepare(args) -> None:
    splits = prep.prepare([args.work / "synth"], args.shared, args.work, seed=args.seed)
    log("manifests written to " + str(args.work / "manifests") + "\n" + prep.describe(splits))


def stage_streams(args) -> None:
    from speechconv.data.evalstream import build_eval_stream
    from speechconv.data.manifest import read_manifest

    noise = json.loads((args.work / "manifests" / "noise.json").read_text())
    for name, (split, with_keywords, seed) in STREAMS.items():
        hours = args.dev_fa_hours if split == "dev" else args.test_fa_hours
        duration = None if with_keywords else hours * 3600.0
        entries = read_manifest(args.work / "manifests" / f"{split}.jsonl")
        keywords = [e for e in entries if e.label == prep.KEYWORD] if with_keywords else []
        others = [e for e in entries if e.label != prep.KEYWORD]
        if not with_keywords:  # false alarms per hour are measured on real speech only
            others = [e for e in others if not e.speaker.startswith(("espeak:", "tts:"))]
        wav, csv = args.work / "streams" / f"{name}.wav", args.work / "streams" / f"{name}.csv"
        start = time.perf_counter()
        rows = build_eval_stream(keywords, others, noise[split], wav, csv, duration_s=duration,
                                 snr_db_range=SNR_DB, seed=seed)
        log(f"{wav}: {len(rows)} clips ({len(keywords)} hello) over {len(noise[split])} noise files "
            f"in {time.perf_counter() - start:.0f} s")


def run_dir(args) -> str:
    """Training output folder: ``train`` for the first run, ``train<N>`` for later ones."""
    return "train" if args.run == 1 else f"train{args.run}"


def training_config(args) -> dict:
    """The recipe's ``hello.yaml`` with WORK paths, noise files and feature statistics filled in."""
    text = (HERE / "hello.yaml").read_text().replace("WORK/train", f"{args.work}/{run_dir(args)}")
    config = yaml.safe_load(text.replace("WORK/", f"{args.work}/"))
    if args.run > 1:  # later runs train on the manifest with mined hard negatives
        config["data"]["init_args"]["train_manifest"] = str(args.work / "manifests" / "train_mined.jsonl")
    noise = json.loads((args.work / "manifests" / "noise.json").read_text())
    for op in config["data"]["init_args"]["augment"]:
        if op.get("noise") == "NOISE_TRAIN":
            op["noise"] = noise["train"]
    mean, std = fit_global_stats(args.work / "manifests" / "train.jsonl", 200, args.seed)
    frontend = config["model"]["init_args"]["frontend"]
    frontend["global_mean"] = [round(v, 5) for v in mean]
    frontend["global_std"] = [round(v, 5) for v in std]
    if args.epochs:
        config["trainer"]["max_epochs"] = args.epochs
    if args.max_time:
        config["trainer"]["max_time"] = args.max_time
    return config


def stage_train(args) -> None:
    path = args.work / run_dir(args) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = training_config(args)
    if args.init_from:
        config["model"]["init_args"]["optimizer"]["lr"] = args.init_lr
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if not args.init_from:
        speechconv("train", "--config", str(path))
        return
    # Continue from another run's weights (fresh optimizer and schedule): LightningCLI without running,
    # load the weights, then fit.
    import torch

    from speechconv.training.cli import SpeechconvCLI

    cli = SpeechconvCLI(args=["--config", str(path)], run=False)
    init = best_checkpoint(args.work, "best", args.init_from)
    cli.model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True)["state_dict"])
    log(f"training from the weights of {init}")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def best_checkpoint(work: Path, which: str = "best", run: str = "train") -> Path:
    """The checkpoint with the lowest val/loss in its name, ``last.ckpt``, or an explicit path."""
    if which not in ("best", "last"):
        return Path(which)
    folder = work / run / "checkpoints"
    return folder / "last.ckpt" if which == "last" else recipe_tools.best_checkpoint(folder)


def _detector_options(spotter) -> dict:
    return {k: spotter.detector[k] for k in ("merge_seconds", "refractory_seconds") if k in spotter.detector}


def stage_evaluate(args) -> None:
    from speechconv.data.manifest import read_manifest
    from speechconv.pretrained import load_pretrained

    ckpt = best_checkpoint(args.work, args.checkpoint, run_dir(args))
    spotter = load_pretrained(ckpt)
    log(f"evaluating {ckpt}")
    out = args.work / ("eval" if args.run == 1 else f"eval{args.run}")
    options = _detector_options(spotter)
    results: dict = {"checkpoint": str(ckpt), "detector": options, "match_window_s": [ev.EARLY_S, ev.LATE_S]}
    for split in ("dev", "test"):
        entries = read_manifest(args.work / "manifests" / f"{split}.jsonl")
        results[f"clips_{split}"] = ev.clip_accuracy(spotter, entries, 1.5)
        log(f"{split} clip accuracy {results[f'clips_{split}']['accuracy']:.4f} "
            f"{results[f'clips_{split}']['per_label']}")
    scored = {}
    for name in STREAMS:
        start = time.perf_counter()
        wav = args.work / "streams" / f"{name}.wav"
        scored[name] = ev.score_stream(spotter, wav, wav.with_suffix(".csv"), out / f"{name}.{ckpt.stem}.npz")
        log(f"scored {name} ({scored[name].duration_s / 3600:.2f} h) in {time.perf_counter() - start:.1f} s")
    dev = (scored["dev_keywords"], scored["dev_negatives"])
    test = (scored["test_keywords"], scored["test_negatives"])
    chosen = ev.choose(ev.sweep(*dev, options), args.target_fa)
    log(f"dev operating point: smoothing {chosen.smoothing_frames} frames, threshold {chosen.threshold}: "
        f"FRR {100 * chosen.frr:.2f}% at {chosen.fa_per_hour:.2f} FA/h ({chosen.hours:.2f} h)")
    on_test = ev.operating_point(*test, chosen.smoothing_frames, chosen.threshold, options)
    det = ev.sweep(*test, options, smoothing=(chosen.smoothing_frames,))
    det_raw = ev.sweep(*test, options, smoothing=(1,)) if chosen.smoothing_frames != 1 else det
    results.update({
        "dev_target_fa_per_hour": args.target_fa,
        "dev_operating_point": chosen,
        "test_at_dev_point": on_test,
        "test_frr_at_0.5_fa_per_hour": ev.frr_at(det, 0.5),
        "test_frr_at_1_fa_per_hour": ev.frr_at(det, 1.0),
        "test_det": det,
        "streams_hours": {name: round(s.duration_s / 3600, 3) for name, s in scored.items()},
        "test_keywords": len(scored["test_keywords"].keywords),
    })
    curves = {f"smoothing {chosen.smoothing_frames}": det}
    if det_raw is not det:
        curves["no smoothing"] = det_raw
    ev.plot_det(curves, out / "det_test.png", {"dev-chosen point": on_test})
    ev.save_json(out / "results.json", results)
    log("results: " + str(out / "results.json") + "\n" + results_table(results))


def results_table(results: dict) -> str:
    """Markdown table of the headline numbers."""
    def point(p) -> str:
        if p is None:
            return "not reached"
        p = p if isinstance(p, dict) else p.__dict__
        return (f"FRR {100 * p['frr']:.2f}% ({p['found']}/{p['keywords']} found), "
                f"{p['fa_per_hour']:.2f} FA/h ({p['false_alarms']} in {p['hours']:.2f} h of real speech + noise); "
                f"keyword stream: {p['keyword_stream_false_alarms']} FA ({p['keyword_stream_fa_per_hour']:.1f}/h); "
                f"threshold {p['threshold']}, smoothing {p['smoothing_frames']}")
    rows = [
        ("test clips: accuracy (threshold 0.5)", f"{100 * results['clips_test']['accuracy']:.2f}% "
         f"(hello {100 * results['clips_test']['per_label'].get('hello', float('nan')):.2f}%, "
         f"negative {100 * results['clips_test']['per_label'].get('negative', float('nan')):.2f}%)"),
        ("dev streams: chosen operating point", point(results["dev_operating_point"])),
        ("test streams at the dev operating point", point(results["test_at_dev_point"])),
        ("test streams: best at <= 0.5 FA/h", point(results["test_frr_at_0.5_fa_per_hour"])),
        ("test streams: best at <= 1 FA/h", point(results["test_frr_at_1_fa_per_hour"])),
    ]
    return "| metric | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


def stage_mine(args) -> None:
    """Hard negatives: score every training negative with the previous run's best checkpoint and
    repeat the ``--mine-top`` highest-scoring ones ``--mine-repeat`` times in ``train_mined.jsonl``."""
    from speechconv.data.manifest import read_manifest, write_manifest
    from speechconv.pretrained import load_pretrained

    previous = "train" if args.run <= 2 else f"train{args.run - 1}"
    spotter = load_pretrained(best_checkpoint(args.work, "best", previous))
    entries = read_manifest(args.work / "manifests" / "train.jsonl")
    negatives = [e for e in entries if e.label == prep.NEGATIVE]
    scores = ev.clip_scores(spotter, negatives)
    order = np.argsort(-scores)[: args.mine_top]
    hard = [negatives[i] for i in order]
    log(f"hard negatives: top {len(hard)} of {len(negatives)} score {scores[order[-1]]:.3f}..{scores[order[0]]:.3f}; "
        f"{int((scores >= 0.5).sum())} score >= 0.5; sources "
        + str(dict(sorted(Counter(e.engine for e in hard).items()))))
    write_manifest(args.work / "manifests" / "train_mined.jsonl", entries + hard * args.mine_repeat)


def stage_package(args) -> None:
    from speechconv.pretrained import load_pretrained, save_pretrained

    results = json.loads((args.work / ("eval" if args.run == 1 else f"eval{args.run}") / "results.json").read_text())
    spotter = load_pretrained(results["checkpoint"], fold_bn=False)  # save the trained layers as they are
    point = results["dev_operating_point"]
    spotter.detector.update({"threshold": point["threshold"], "smoothing_frames": point["smoothing_frames"]})
    spotter.detector.pop("smoothing_seconds", None)
    card = model_card(spotter, results, args)
    out = save_pretrained(spotter, args.out, card)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    figure = HERE / "results" / "det_test.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(Path(results["checkpoint"]).parents[2].joinpath(
        "eval" if args.run == 1 else f"eval{args.run}", "det_test.png").read_bytes())
    (HERE / "results" / "results.json").write_text(
        json.dumps({k: v for k, v in results.items() if k != "test_det"}, indent=1) + "\n")
    log(f"packaged {out} ({size / 1024:.0f} KiB); DET curve copied to {figure}")
    if size > 1024 * 1024:
        raise SystemExit(f"{out} is {size} bytes, over the 1 MB budget")


def model_card(spotter, results: dict, args) -> str:
    template = (HERE / "model_card.md").read_text()
    model = spotter.model
    fields = {
        "params": f"{model.num_parameters():,}",
        "macs": f"{model.macs_per_second(spotter.sample_rate / spotter.frontend.hop_length) / 1e6:.2f}",
        "detector": ", ".join(f"{k}={v}" for k, v in spotter.detector.items()),
        "table": results_table(results),
        "test_hours": f"{results['streams_hours']['test_negatives'] + results['streams_hours']['test_keywords']:.2f}",
        "test_keywords": str(results["test_keywords"]),
        "target_fa": f"{results.get('dev_target_fa_per_hour', 0.5):g}",
        "test_found": f"{100 * (1 - results['test_at_dev_point']['frr']):.0f}%",
        "test_fa": f"{results['test_at_dev_point']['fa_per_hour']:.2f}",
    }
    for key, value in fields.items():
        template = template.replace("{" + key + "}", value)
    return template


def stage_example(args) -> None:
    import make_example

    make_example.main(["--out", str(args.example_dir)])


# ------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="+", choices=(*STAGES, "all"))
    parser.add_argument("--work", type=Path, default=REPO / "exp" / "hello", help="working folder")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with the real data sets (wake-word-keywords, fsdd, ...)")
    parser.add_argument("--positives", type=int, default=5000, help="synth: hello clips")
    parser.add_argument("--negatives", type=int, default=5000, help="synth: negative clips")
    parser.add_argument("--workers", type=int, default=2, help="synth: worker processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="synth: redo even if the corpus exists")
    parser.add_argument("--dev-fa-hours", type=float, default=2.0, help="streams: dev negative-only hours")
    parser.add_argument("--test-fa-hours", type=float, default=3.0, help="streams: test negative-only hours")
    parser.add_argument("--epochs", type=int, default=0, help="train: override max_epochs")
    parser.add_argument("--max-time", default="", help="train: override max_time (DD:HH:MM:SS)")
    parser.add_argument("--run", type=int, default=1,
                        help="train/mine/evaluate/package: run number (2+ trains on mined hard negatives)")
    parser.add_argument("--mine-top", type=int, default=600, help="mine: hard negatives kept")
    parser.add_argument("--mine-repeat", type=int, default=2, help="mine: extra copies of each")
    parser.add_argument("--init-from", default="", help="train: start from the best weights of this run folder")
    parser.add_argument("--init-lr", type=float, default=0.001, help="train: learning rate with --init-from")
    parser.add_argument("--checkpoint", default="best", help="evaluate: best, last or a .ckpt path")
    parser.add_argument("--target-fa", type=float, default=0.5, help="evaluate: FA/h for the dev operating point")
    parser.add_argument("--out", type=Path, default=REPO / "speechconv" / "pretrained" / "hello",
                        help="package: output model directory")
    parser.add_argument("--example-dir", type=Path, default=REPO / "speechconv" / "pretrained" / "examples")
    args = parser.parse_args(argv)
    args.work, args.shared = args.work.resolve(), args.shared.resolve()  # manifests store absolute paths
    if "all" in args.stages:  # mining needs a previous run
        stages = [s for s in STAGES if s != "mine" or args.run > 1]
    else:
        stages = [s for s in STAGES if s in args.stages]
    for stage in stages:
        start = time.perf_counter()
        log(f"stage {stage}")
        globals()[f"stage_{stage}"](args)
        log(f"stage {stage} done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
