"""The bundled "hello" detectors.

``hello`` (the default of ``speechconv detect``): a keyword head on Whisper's encoder, trained on synthetic
hellos only (recipes/hello/whisper_head.py); ``all`` runs these stages:

    python recipes/hello/run.py whisper_synth    --work exp/hello --shared ../shared/data  # TTS corpora
    python recipes/hello/run.py whisper_train    --work exp/hello --shared ../shared/data  # encode, train the head
    python recipes/hello/run.py whisper_evaluate --work exp/hello --shared ../shared/data  # threshold on real speech
    python recipes/hello/run.py whisper_package  --work exp/hello                          # -> pretrained/hello

``hello_small``: TC-ResNet8 on PCEN, ``speechconv train-keyword hello`` plus what only a bundled model needs
(torch-free, streams with 80 ms outputs, but hears real people far less well):

    python recipes/hello/run.py train    --work exp/hello --shared ../shared/data   # train-keyword hello ...
    python recipes/hello/run.py evaluate --work exp/hello --shared ../shared/data   # threshold on real speech
    python recipes/hello/run.py verify   --work exp/hello [--model hello_small]     # threshold for detect --verify
    python recipes/hello/run.py package  --work exp/hello                           # -> pretrained/hello_small
    python recipes/hello/run.py example                                             # the bundled example WAV

Hello-specific extras over what a user's ``train-keyword`` run does (both models):

* real training negatives: the real-speech protocol of ``recipes/wakeword_benchmark`` (8 LibriSpeech
  speakers, FSDD, custom commands, Precise-Community) plus every real recording of the benchmark's four
  wake words (more than 50 real voices saying something that is not "hello"); its training noise;
* the default threshold is chosen for <= 0.5 false alarms per hour on **real continuous speech**: the
  benchmark's negative stream (20 LibriSpeech speakers and 2 FSDD speakers that training never heard,
  1.35 h, noise at 10 dB SNR), with keywords found counted on the held-out voices' synthetic stream;
* the model card reports those numbers next to the real-speaker benchmark (the same recipe, other
  keywords, real people), since no real "hello" recordings are available.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BENCHMARK = REPO / "recipes" / "wakeword_benchmark"
sys.path.insert(0, str(BENCHMARK))  # the benchmark's data protocol: which real speakers train and which test
import protocol  # noqa: E402

sys.path.insert(0, str(HERE))
import whisper_head  # noqa: E402

from speechconv.training.recipe_tools import add_stage_arguments, chosen_stages, link_folder, run_stages  # noqa: E402

WHISPER_STAGES = ("whisper_synth", "whisper_train", "whisper_evaluate", "whisper_package")
STAGES = (*WHISPER_STAGES, "whisper_refine", "train", "evaluate", "verify", "package", "example")
EVERYTHING = WHISPER_STAGES  # the small model's stages, verify (pocketsphinx) and example are run by name

TARGET_FA = 0.5
#: Manifest engines of real recordings (the rest are TTS voices).
REAL_ENGINES = ("librispeech", "fsdd", "custom-speech-commands", "precise-community", "wake-word-keywords")


def log(message: str) -> None:
    print(f"[hello] {message}", flush=True)


def speechconv(*args: str) -> None:
    log("$ speechconv " + " ".join(args))
    subprocess.run([sys.executable, "-m", "speechconv.cli.main", *args], check=True, cwd=REPO)


def stage_whisper_synth(args) -> None:
    whisper_head.stage_whisper_synth(args, log, speechconv)


def stage_whisper_train(args) -> None:
    whisper_head.stage_whisper_train(args, log, protocol)


def stage_whisper_refine(args) -> None:
    whisper_head.stage_whisper_refine(args, log, protocol, speechconv)


def stage_whisper_evaluate(args) -> None:
    whisper_head.stage_whisper_evaluate(args, log, protocol)


def stage_whisper_package(args) -> None:
    args.out = args.out or REPO / "speechconv" / "pretrained" / "hello"
    whisper_head.stage_whisper_package(args, log, lambda head, detector, results: whisper_card(
        head, detector, results, args))


def stage_train(args) -> None:
    from speechconv.data.readers import read_wake_word_keywords

    real = protocol.real_training_negatives(args.shared, args.work, seed=args.seed)
    speech = [e.path for e in real if e.engine != "noise"]
    speech += [e.path for e in read_wake_word_keywords(args.shared / "wake-word-keywords")]
    train_noise, _ = protocol.noise_files(args.shared)
    log(f"{len(speech)} real negative recordings, {len(train_noise)} noise files")
    speechconv("train-keyword", "hello", "--out", str(args.work / "model"), "--minutes", str(args.minutes),
               "--negatives-from", str(link_folder(args.work / "negatives_links", speech)),
               "--noise-from", str(link_folder(args.work / "noise_links", train_noise)),
               "--seed", str(args.seed), "--workers", str(args.workers), "--resume")


def stage_evaluate(args) -> None:
    from speechconv.evaluation import kws
    from speechconv.evaluation.streams import load_stream
    from speechconv.pretrained import load_pretrained
    from speechconv.training.keyword_recipe.pipeline import stream_bracket

    model = args.work / "model"
    spotter = load_pretrained(model, fold_bn=True)  # inference only
    negatives = args.work / "streams" / "negatives.wav"
    if not negatives.is_file():
        protocol.build_streams(args.shared, args.work, seed=args.seed, log=log, keywords=())  # the negatives only
    cache = args.work / "eval" / f"cache_{(model / 'model.safetensors').stat().st_mtime_ns}"
    synthetic_wav = model / "work" / "eval" / "keyword_stream.wav"
    synthetic = load_stream(synthetic_wav, "hello", spotter=spotter, cache_dir=cache)
    real = load_stream(negatives, "hello", spotter=spotter, cache_dir=cache, keyword_free=True)
    options = {k: spotter.detector[k] for k in ("merge_seconds", "refractory_seconds")}
    points = kws.sweep([synthetic], [real], options, smoothing=(1, 2, 3, 5))
    chosen = kws.choose(points, TARGET_FA)
    synthetic_fa = kws.operating_point([synthetic], [synthetic], chosen.smoothing_frames, chosen.threshold, options)
    by_text = load_stream(synthetic_wav, "hello", spotter=spotter, cache_dir=cache, group_by="text")
    bracket = stream_bracket(by_text, chosen, options, "hello")  # smoothing moves the peaks: recalibrate
    results = {
        "model": str(model), "target_fa_per_hour": TARGET_FA, "chosen": chosen.as_dict(),
        "synthetic_stream_false_alarms": synthetic_fa.false_alarms,
        "synthetic_stream_hours": round(synthetic.duration_s / 3600, 3),
        "real_negative_hours": round(real.duration_s / 3600, 3),
        "bracket": None if bracket is None else {"keyword_seconds": bracket[0], "peak_delay_seconds": bracket[1]},
        "frr_at": {f"{t:g}": (p.as_dict() if p else None) for t in (0.5, 1.0, 5.0) for p in [kws.frr_at(points, t)]},
    }
    out = args.work / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    kws.plot_det({"held-out synthetic voices vs real speech": points}, out / "det.png", {"default": chosen},
                 title="hello: keywords of held-out TTS voices, false alarms on real speech")
    log(f"threshold for <= {TARGET_FA} FA/h on {real.duration_s / 3600:.2f} h of real speech: {kws.describe(chosen)}")


def stage_verify(args) -> None:
    """``speechconv detect --verify`` for hello: the model's scores fused with pocketsphinx's "hello" hits around
    the frames that reach the gate (speechconv.detect.verify; its default gate and weight). The threshold for
    <= 0.5 FA/h on the same real speech as ``evaluate``, with the held-out voices' synthetic hellos found there,
    next to the model alone and the fused scores at the model's own threshold."""
    import dataclasses

    from speechconv.detect import fusion
    from speechconv.detect.keyphrase import KeyphraseSearch
    from speechconv.detect.verify import verify_curve
    from speechconv.evaluation import kws
    from speechconv.evaluation.streams import load_stream
    from speechconv.pretrained import load_pretrained

    model = args.model or str(args.work / "model")
    spotter = load_pretrained(model, fold_bn=True)
    wavs = {"synthetic": args.work / "model" / "work" / "eval" / "keyword_stream.wav",
            "real": args.work / "streams" / "negatives.wav"}
    for wav in wavs.values():
        if not wav.is_file():
            raise SystemExit(f"{wav}: missing; run the train and evaluate stages first")
    out = args.work / "eval" / "verify"
    out.mkdir(parents=True, exist_ok=True)
    cache = out / f"cache_{''.join(c if c.isalnum() else '_' for c in Path(model).name)}"
    alone, fused = {}, {}
    for name, wav in wavs.items():
        alone[name] = load_stream(wav, "hello", spotter=spotter, cache_dir=cache, keyword_free=name == "real")
        fused_file = out / f"fused_{name}.npz"  # as detect --verify: searched around the gate's candidates
        if not fused_file.is_file():
            log(f"pocketsphinx 'hello' around the candidates in {wav}")
            scores, verifier = verify_curve(wav, alone[name].times, alone[name].scores, KeyphraseSearch("hello"))
            log(f"searched {verifier.searched_seconds / 3600:.3f} h of {alone[name].duration_s / 3600:.3f} h")
            np.savez(fused_file, scores=scores)
        fused[name] = dataclasses.replace(alone[name], scores=np.load(fused_file)["scores"])
    options = {k: spotter.detector[k] for k in ("merge_seconds", "refractory_seconds")}
    points = kws.sweep([fused["synthetic"]], [fused["real"]], options, smoothing=(1, 2, 3, 5),
                       thresholds=kws.DENSE_THRESHOLDS)
    chosen = kws.choose(points, TARGET_FA)
    default = (spotter.detector.get("smoothing_frames", 1), spotter.detector["threshold"])
    rows = {"model alone, its threshold": kws.operating_point([alone["synthetic"]], [alone["real"]], *default, options),
            "fused, the model's threshold": kws.operating_point([fused["synthetic"]], [fused["real"]], *default,
                                                                options),
            f"fused, threshold for <= {TARGET_FA:g} FA/h": chosen}
    results = {"model": model, "weight": fusion.DEFAULT_WEIGHT, "target_fa_per_hour": TARGET_FA,
               "real_negative_hours": round(alone["real"].duration_s / 3600, 3),
               **{name: point.as_dict() for name, point in rows.items()}}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [f"`speechconv detect --verify` with {model}: synthetic hellos of held-out voices found, false alarms "
             f"on {alone['real'].duration_s / 3600:.2f} h of real speech", "",
             "| setting | threshold | smoothing | hellos found | false alarms (per hour) |", "|---|---|---|---|---|"]
    for name, p in rows.items():
        lines.append(f"| {name} | {p.threshold:g} | {p.smoothing_frames} | {100 * (1 - p.frr):.1f}% "
                     f"({p.found}/{p.keywords}) | {p.false_alarms} ({p.fa_per_hour:.2f}) |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def stage_package(args) -> None:

    from speechconv.pretrained import load_pretrained, save_pretrained

    args.out = args.out or REPO / "speechconv" / "pretrained" / "hello_small"
    results = json.loads((args.work / "eval" / "results.json").read_text())
    spotter = load_pretrained(args.work / "model")
    chosen = results["chosen"]
    spotter.detector.update({"threshold": chosen["threshold"], "smoothing_frames": chosen["smoothing_frames"]})
    spotter.detector.update(results.get("bracket") or {})
    card = model_card(spotter, results, args)
    save_pretrained(spotter, args.out, card, onnx=True)
    whisper_head.publish(args.out, args.work / "eval" / "det.png", HERE / "results" / "small", results, log)


def benchmark_table(work: Path) -> str:
    """The real-speaker benchmark report of ``work`` (``recipes/wakeword_benchmark/run.py report``), if run."""
    report = work / "report.md"
    return report.read_text().strip() if report.is_file() else "(the benchmark has not been run on this machine)"


def model_card(spotter, results: dict, args) -> str:
    template = (HERE / "model_card_small.md").read_text()
    chosen = results["chosen"]
    model = spotter.model
    train_card = (args.work / "model" / "README.md").read_text()
    data = train_card[train_card.index("## Data"):train_card.index("## Measured")].strip()

    def found(p) -> str:
        if p is None:
            return "not reached"
        alarms = f"{p['false_alarms']} false alarm{'' if p['false_alarms'] == 1 else 's'}"
        return f"{100 * (1 - p['frr']):.1f}% ({p['found']}/{p['keywords']}), {alarms}, threshold {p['threshold']:g}"

    rows = "".join(f"| <= {fa} FA/h on real speech | {found(p)} |\n" for fa, p in results["frr_at"].items())
    fields = {
        "params": f"{model.num_parameters():,}",
        "macs": f"{model.macs_per_second(spotter.sample_rate / spotter.frontend.hop_length) / 1e6:.2f}",
        "detector": ", ".join(f"{k}={v}" for k, v in spotter.detector.items()),
        "threshold": f"{chosen['threshold']:g}",
        "smoothing": str(chosen["smoothing_frames"]),
        "found": f"{100 * (1 - chosen['frr']):.1f}%",
        "keywords": str(chosen["keywords"]),
        "fa": f"{chosen['false_alarms']}",
        "real_hours": f"{results['real_negative_hours']:.2f}",
        "synthetic_fa": str(results["synthetic_stream_false_alarms"]),
        "synthetic_hours": f"{results['synthetic_stream_hours']:.2f}",
        "rows": rows.rstrip("\n"),
        "data": data.removeprefix("## Data").strip(),
        "minutes": f"{args.minutes:g}",
        "benchmark": benchmark_table(args.benchmark_work),
    }
    for key, value in fields.items():
        template = template.replace("{" + key + "}", value)
    return template


def whisper_card(head, detector: dict, results: dict, args) -> str:
    """The card of the whisper-head hello: recipes/hello/model_card.md filled from the run's files."""
    import re
    from collections import Counter

    from speechconv.data.manifest import read_manifest
    from speechconv.export.whisper_head import whisper_frontend_config

    bench = whisper_head.benchmark()
    ns = whisper_head.bench_args(args)
    manifests = bench.variant_dir(ns, "hello") / "manifests"
    frontend = whisper_frontend_config()
    live = frontend["live"]
    chosen = results["chosen"]

    def counts(name: str) -> str:
        entries = read_manifest(manifests / name)
        real = Counter(e.label for e in entries if e.engine in REAL_ENGINES or e.engine == "noise")
        synthetic = Counter(e.label for e in entries if e.engine not in REAL_ENGINES and e.engine != "noise")
        return (f"{synthetic['hello']:,} synthetic hellos, {synthetic['negative']:,} synthetic negatives"
                + (f", {real['negative']:,} real negatives and noise segments" if real else ""))

    synth = []
    for group in bench.variants()[whisper_head.VARIANT]["synth"]:
        entries = read_manifest(args.work / "synth" / "hello" / group / "manifest.jsonl")
        labels = Counter(e.label for e in entries)
        engines = ", ".join(sorted({e.engine for e in entries}))
        synth.append(f"{len(entries):,} from {engines} ({len({(e.engine, e.voice) for e in entries})} voices; "
                     f"{labels['keyword']:,} hellos alone and in carrier phrases, {labels['negative']:,} random "
                     "words and everyday phrases, no near misses)")
    dev_voices = len({e.speaker for e in read_manifest(manifests / "dev.jsonl")})
    augment = bench.training_config(ns, "hello", 0)["data"]["init_args"]["augment"]
    table = (args.benchmark_work / "runs" / whisper_head.VARIANT / "whisper.md").read_text() \
        if (args.benchmark_work / "runs" / whisper_head.VARIANT / "whisper.md").is_file() else ""
    cost = re.search(r"take (\d+) CPU s per hour", table)
    live_cost = re.search(r"the encoder (\d+) CPU s per hour", table)
    benchmark = "\n".join(line for line in table.splitlines() if line.startswith("|") or not line.strip() or
                          line.startswith(("Live frames (", "Whisper tiny.en"))).strip()

    def found(p) -> str:
        if p is None:
            return "not reached"
        alarms = f"{p['false_alarms']} false alarm{'' if p['false_alarms'] == 1 else 's'}"
        return f"{100 * (1 - p['frr']):.1f}% ({p['found']}/{p['keywords']}), {alarms}, threshold {p['threshold']:g}"

    transfer = ["| keyword | real keywords missed (mean of seeds) | per seed | false alarms per hour, both streams |",
                "|---|---|---|---|"]
    for keyword, row in (results.get("benchmark_transfer") or {}).items():
        per_seed = ", ".join(f"{100 * r['frr']:.1f}%" for r in row["seeds"])
        transfer.append(f"| {keyword} | {100 * row['mean_frr']:.1f}% | {per_seed} | "
                        f"{row['mean_fa_per_hour_both_streams']:.2f} |")
    if len(transfer) > 2:
        frrs = [row["mean_frr"] for row in results["benchmark_transfer"].values()]
        transfer.append(f"| mean | {100 * float(np.mean(frrs)):.1f}% | | |")
    fields = {
        "overlap": f"{2 * frontend['context_seconds']:g}", "context": f"{frontend['context_seconds']:g}",
        "live_piece": f"{live['left_seconds'] + live['hop_seconds'] + live['right_seconds']:g}",
        "left": f"{live['left_seconds']:g}", "right": f"{live['right_seconds']:g}",
        "width": str(head.width), "kernel": str(head.kernel), "kernel_ms": str(head.kernel * 20),
        "temperature": f"{head.temperature:g}",
        "params": f"{sum(p.numel() for p in head.parameters()):,}",
        "cost": cost.group(1) if cost else "n/a", "live_cost": live_cost.group(1) if live_cost else "n/a",
        "detector": ", ".join(f"{k}={v}" for k, v in detector.items()),
        "synth": "; ".join(synth), "dev_voices": str(dev_voices),
        "train_counts": counts("train.jsonl"), "dev_counts": counts("dev.jsonl"),
        "augment": ", ".join(op["name"] for op in augment),
        "passes": str(bench.WHISPER_PASSES), "epochs": str(bench.WHISPER_HEAD_EPOCHS),
        "real_hours": f"{results['real_negative_hours']:.2f}", "keywords": str(chosen["keywords"]),
        "rows": "\n".join(f"| <= {fa} FA/h on real speech | {found(p)} |" for fa, p in results["frr_at"].items()),
        "threshold": f"{chosen['threshold']:g}", "smoothing": str(chosen["smoothing_frames"]),
        "found": f"{100 * (1 - chosen['frr']):.1f}%", "fa": str(chosen["false_alarms"]),
        "synthetic_fa": str(results["synthetic_stream_false_alarms"]),
        "live_threshold": f"{results['live']['chosen']['threshold']:g}",
        "live_smoothing": str(results["live"]["chosen"]["smoothing_frames"]),
        "live_found": f"{100 * (1 - results['live']['chosen']['frr']):.1f}%",
        "live_fa": str(results["live"]["chosen"]["false_alarms"]),
        "live_at_file_found": f"{100 * (1 - results['live']['at_file_threshold']['frr']):.1f}%",
        "live_at_file_fa": str(results["live"]["at_file_threshold"]["false_alarms"]),
        "synthetic_hours": f"{results['synthetic_stream_hours']:.2f}",
        "benchmark": benchmark or "(the benchmark's whisper stage has not been run on this machine)",
        "transfer": "\n".join(transfer) if len(transfer) > 2 else "(not measured on this machine)",
    }
    template = (HERE / "model_card.md").read_text()
    for key, value in fields.items():
        template = template.replace("{" + key + "}", value)
    return template


def stage_example(args) -> None:
    sys.path.insert(0, str(HERE))
    import make_example

    make_example.main(["--out", str(args.example_dir)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stage_arguments(parser, STAGES)
    parser.add_argument("--work", type=Path, default=REPO / "exp" / "hello", help="working folder")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with the real data sets (wake-word-keywords, librispeech-train-clean-5, ...)")
    parser.add_argument("--benchmark-work", type=Path, default=REPO / "exp" / "wwb",
                        help="package: the wakeword_benchmark work folder whose report goes into the model card")
    parser.add_argument("--minutes", type=float, default=40.0,
                        help="train: training budget in minutes (package: stated in the card)")
    parser.add_argument("--workers", type=int, default=2, help="train: synthesis processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="whisper_package / package: output model directory (default: speechconv/pretrained/"
                        "hello / hello_small)")
    parser.add_argument("--model", default=None,
                        help="verify: the small model to measure, a directory or bundled name (default: WORK/model)")
    parser.add_argument("--whisper-head", choices=("first", "refined"), default="first",
                        help="whisper_evaluate / whisper_package: the head of whisper_train (first) or of the "
                        "tried whisper_refine stage (default: first)")
    parser.add_argument("--example-dir", type=Path, default=REPO / "speechconv" / "pretrained" / "examples")
    args = parser.parse_args(argv)
    args.work, args.shared = args.work.resolve(), args.shared.resolve()
    run_stages(chosen_stages(parser, args, STAGES, everything=EVERYTHING), globals(), args, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
