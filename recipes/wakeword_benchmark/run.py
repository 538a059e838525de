"""Real-speaker wake-word benchmark: detectors trained from synthetic speech, tested on real people.

For each of alexa, computer, jarvis and smart mirror a detector is trained as a user trains their own
keyword (TTS positives only) and tested on every real crowd-sourced recording of that keyword in
``../shared/data/wake-word-keywords`` among real speech it never saw, at 10 dB SNR. The protocol and
the splits are in ``protocol.py``; the README holds the tables this script printed.

    python recipes/wakeword_benchmark/run.py streams  --work exp/wwb --shared ../shared/data
    python recipes/wakeword_benchmark/run.py synth    --work exp/wwb            # TTS corpora per keyword
    python recipes/wakeword_benchmark/run.py prepare  --work exp/wwb --variant voices
    python recipes/wakeword_benchmark/run.py train    --work exp/wwb --variant voices [--keywords alexa]
    python recipes/wakeword_benchmark/run.py evaluate --work exp/wwb --variant voices
    python recipes/wakeword_benchmark/run.py train evaluate --work exp/wwb --variant pcen --seeds 0,1,2
    python recipes/wakeword_benchmark/run.py anchors  --work exp/wwb            # pocketsphinx, openWakeWord
    python recipes/wakeword_benchmark/run.py fusion   --work exp/wwb --variant noconf --seeds 0,1,2,3
    python recipes/wakeword_benchmark/run.py whisper  --work exp/wwb --variant noconf --seeds 0,1  # head on whisper
    python recipes/wakeword_benchmark/run.py report   --work exp/wwb            # tables of every variant
    python recipes/wakeword_benchmark/run.py all      --work exp/wwb --variant voices

Stages are resumable: finished outputs are kept (``--force`` redoes them), and ``train`` continues
from ``last.ckpt`` when a run was interrupted. ``--stage``/``--stop-stage`` run a range of stages.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import protocol  # sibling module: the script folder is on sys.path
import yaml

from speechconv.training.recipe_tools import (
    add_stage_arguments,
    best_checkpoint,
    chosen_stages,
    fit_global_stats,
    link_folder,
    run_stages,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STAGES = ("streams", "synth", "convert", "prepare", "mine", "train", "evaluate", "ensembles", "durations", "anchors",
          "fusion", "gating", "whisper", "report")


class SynthGroup(NamedTuple):
    engines: str
    positives: int
    negatives: int
    options: tuple[str, ...] = ()  # more `speechconv synth` options
    seed_offset: int = 0


SYNTH_GROUPS = {
    "classic": SynthGroup("espeak,flite,festival", 2500, 2500),
    "neural": SynthGroup("piper,kokoro", 600, 300),
    # negatives only: near misses of any length and across word boundaries ("a record" for "alexa")
    "hard": SynthGroup("espeak,flite,festival,piper", 0, 3000,
                       ("--confusables", "near-miss", "--confusable-share", "0.8"), seed_offset=50),
    # classic without near-miss negatives (same seed: the same keyword clips; random words and phrases only)
    "classic_noconf": SynthGroup("espeak,flite,festival", 2500, 2500, ("--confusable-share", "0")),
    # negatives only, natural voices: 80% running speech, windows of the training speakers' transcripts
    "prose": SynthGroup("piper,kokoro", 0, 1000, ("--sentences", "{sentences}", "--sentence-share", "0.8"),
                        seed_offset=60),
    # Kokoro only, 405 voices (base styles, blends and timbre/prosody mixes): many more natural voices
    "kokoro": SynthGroup("kokoro", 1000, 400, ("--confusable-share", "0"), seed_offset=70),
}
DEFAULT_SYNTH_GROUPS = ("classic", "neural")  # the others only for their rows, e.g. --synth-groups hard
FA_TARGETS = (0.5, 1.0)
#: A looser point, read off the DET curves: at <= 1 FA/h a row is set by its 2-3 highest false alarms
#: over 2.4 h, at <= 5 FA/h by about a dozen, so it ranks levers with less noise.
DIAGNOSTIC_FA = 5.0
DIAGNOSTIC_NOTE = " (diagnostic, not a target: set by about a dozen false alarms instead of two or three)"
MAX_KEYWORD_SECONDS = 1.45


def log(message: str) -> None:
    print(f"[wwb] {message}", flush=True)


def speechconv(*args: str) -> None:
    cmd = [sys.executable, "-m", "speechconv.cli.main", *args]
    log("$ speechconv " + " ".join(args))
    subprocess.run(cmd, check=True, cwd=REPO)


def variants() -> dict:
    return yaml.safe_load((HERE / "conf" / "variants.yaml").read_text())


def variant_dir(args, keyword: str | None = None, variant: str | None = None) -> Path:
    """``runs/<variant>/<keyword>``: the variant's manifests; each training seed is a run below it."""
    folder = args.work / "runs" / (variant or args.variant)
    return folder / keyword if keyword else folder


def seed_dir(args, keyword: str, seed: int, variant: str | None = None) -> Path:
    """``runs/<variant>/<keyword>/seed<N>``: one trained detector (config, checkpoints, eval)."""
    return variant_dir(args, keyword, variant) / f"seed{seed}"


# ------------------------------------------------------------------------------------ stages


def stage_streams(args) -> None:
    protocol.build_streams(args.shared, args.work, seed=args.seed, log=log)


def stage_synth(args) -> None:
    groups = args.synth_groups or list(DEFAULT_SYNTH_GROUPS)
    sentences = args.work / "synth" / "training_sentences.txt"
    if any("{sentences}" in option for group in groups for option in SYNTH_GROUPS[group].options):
        sentences.parent.mkdir(parents=True, exist_ok=True)
        sentences.write_text("\n".join(protocol.training_sentences(args.shared)) + "\n")
    for keyword in args.keywords:
        for group in groups:
            spec = SYNTH_GROUPS[group]
            out = args.work / "synth" / keyword / group
            if (out / "manifest.jsonl").is_file() and not args.force:
                log(f"{out}/manifest.jsonl exists; skipping")
                continue
            seed = args.seed + 100 * protocol.KEYWORDS.index(keyword) + spec.seed_offset
            speechconv("synth", "--keyword", protocol.keyword_text(keyword), "--out", str(out),
                       "--n", str(spec.positives and (args.positives or spec.positives)),
                       "--negatives", str(args.negatives or spec.negatives),
                       "--engines", spec.engines, "--seed", str(seed), "--workers", str(args.workers),
                       *(option.format(sentences=sentences) for option in spec.options))


def stage_convert(args) -> None:
    """Each synthetic corpus re-synthesised toward real speakers' pitch and formants (``<corpus>_praat``)."""
    from speechconv.data.voice_convert import convert_corpus, voice_stats

    stats_file = args.work / "synth" / "reference_voices.json"
    if not stats_file.is_file():
        stats = voice_stats(protocol.reference_speakers(args.shared))
        stats_file.write_text(json.dumps({k: vars(v) for k, v in stats.items()}, indent=1) + "\n")
    from speechconv.data.voice_convert import VoiceStats

    references = [VoiceStats(**v) for v in json.loads(stats_file.read_text()).values()]
    log(f"{len(references)} reference voices: median F0 "
        + ", ".join(f"{r.median_hz:.0f}" for r in sorted(references, key=lambda r: r.median_hz)) + " Hz")
    for keyword in args.keywords:
        for group in args.synth_groups or list(DEFAULT_SYNTH_GROUPS):
            source = args.work / "synth" / keyword / group
            out = args.work / "synth" / keyword / f"{group}_praat"
            if (out / "manifest.jsonl").is_file() and not args.force:
                log(f"{out}/manifest.jsonl exists; skipping")
                continue
            if not (source / "manifest.jsonl").is_file():
                log(f"{source}: no corpus; skipping")
                continue
            convert_corpus(source / "manifest.jsonl", out, references, seed=args.seed, workers=args.workers)
            log(f"converted {source} -> {out}")


def stage_prepare(args) -> None:
    spec = variants()[args.variant]
    if "train_keyword" in spec:
        log(f"{args.variant}: speechconv train-keyword prepares its own data in the train stage")
        return
    real = protocol.real_training_negatives(args.shared, args.work, seed=args.seed)
    for keyword in args.keywords:
        synth_dirs = [args.work / "synth" / keyword / group for group in spec["synth"]]
        missing = [d.name for d in synth_dirs if not (d / "manifest.jsonl").is_file()]
        if missing:
            raise SystemExit(f"{args.variant}/{keyword}: no synthetic corpus {', '.join(missing)} under "
                             f"{args.work / 'synth' / keyword}; run: run.py synth --synth-groups "
                             f"{','.join(sorted({m.removesuffix('_praat') for m in missing}))} --keywords {keyword}"
                             + (" (then convert)" if any(m.endswith("_praat") for m in missing) else ""))
        repeats = {args.work / "synth" / keyword / group: int(n) for group, n in (spec.get("repeat") or {}).items()}
        counts = protocol.write_manifests(keyword, synth_dirs, real, variant_dir(args, keyword) / "manifests",
                                          MAX_KEYWORD_SECONDS, repeats)
        log(f"{args.variant}/{keyword}: {counts}")
        if spec.get("transcribed"):
            write_transcribed(args, keyword, spec["transcribed"])


def write_transcribed(args, keyword: str, options: dict) -> None:
    """``manifests/transcribed.jsonl`` for the phone task: the real transcribed training speech (FSDD cut
    to ``fsdd_per_speaker`` clips per speaker, corpora listed ``repeat`` times) and ``tts`` synthetic
    training clips of the keyword's own training split (never a dev voice)."""
    from speechconv.data.manifest import read_manifest, write_manifest

    rng = np.random.default_rng(args.seed)
    real = protocol.transcribed_speech(args.shared)
    fsdd = [e for e in real if e.engine == "fsdd"]
    keep = {id(fsdd[i]) for i in rng.permutation(len(fsdd))[: options.get("fsdd_per_speaker", 150) * 4]}
    real = [e for e in real if e.engine != "fsdd" or id(e) in keep]
    repeat = options.get("repeat") or {}
    entries = [e for e in real for _ in range(int(repeat.get(e.engine, 1)))]
    manifests = variant_dir(args, keyword) / "manifests"
    real_engines = {e.engine for e in real} | {"noise"}
    synthetic = [e for e in read_manifest(manifests / "train.jsonl") if e.text and e.engine not in real_engines]
    entries += [synthetic[i] for i in rng.permutation(len(synthetic))[: options.get("tts", 1000)]]
    write_manifest(manifests / "transcribed.jsonl", entries)
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.engine] = counts.get(e.engine, 0) + 1
    log(f"{args.variant}/{keyword}: transcribed utterances {counts}")


def _set(config: dict, dotted: str, value) -> None:
    """Set a dotted key; a key ending in ``+`` appends ``value``'s items to the list there instead."""
    append = dotted.endswith("+")
    keys = dotted.removesuffix("+").split(".")
    for key in keys[:-1]:
        config = config.setdefault(key, {})
    if append:
        config.setdefault(keys[-1], []).extend(value)
    else:
        config[keys[-1]] = value


def _fill(text: str, manifests: Path, work: Path, keyword: str) -> str:
    return text.replace("MANIFESTS/", f"{manifests}/").replace("WORK", str(work)).replace("KEYWORD", keyword)


def training_config(args, keyword: str, seed: int) -> dict:
    """``conf/train.yaml`` for one keyword and training seed, with the variant's overrides applied."""
    manifests, work = variant_dir(args, keyword) / "manifests", seed_dir(args, keyword, seed)
    config = yaml.safe_load(_fill((HERE / "conf" / "train.yaml").read_text(), manifests, work, keyword))
    config["seed_everything"] = seed  # initialisation, batch order and augmentation draws
    config["data"]["init_args"]["seed"] = seed
    overrides = variants()[args.variant].get("overrides") or {}
    for dotted, value in yaml.safe_load(_fill(yaml.safe_dump(overrides), manifests, work, keyword) or "{}").items():
        _set(config, dotted, value)
    train_noise, _ = protocol.noise_files(args.shared)
    for op in config["data"]["init_args"]["augment"]:
        if op.get("noise") == "NOISE_TRAIN":
            op["noise"] = train_noise
        elif op.get("noise") == "SPEECH_TRAIN":  # babble: the training speakers' real read speech
            op["noise"] = [e.path for e in protocol.librispeech(args.shared)
                           if e.speaker in protocol.LIBRISPEECH_TRAIN_SPEAKERS]
    frontend = config["model"]["init_args"]["frontend"]
    if frontend.get("normalization") == "global":
        mean, std = fit_global_stats(manifests / "train.jsonl", 200, args.seed)
        frontend["global_mean"] = [round(v, 5) for v in mean]
        frontend["global_std"] = [round(v, 5) for v in std]
    if args.max_time:
        config["trainer"]["max_time"] = args.max_time
    if args.epochs:
        config["trainer"]["max_epochs"] = args.epochs
    return config


def stage_mine(args) -> None:
    """Variants with ``mine_from``: hard negatives from the real training speech, scored by that variant's
    detector, added ``mine_repeat`` times to the training manifest."""
    from speechconv.data.manifest import read_manifest, write_manifest
    from speechconv.pretrained import load_pretrained
    from speechconv.training.mining import mine_hard_negatives

    spec = variants()[args.variant]
    if not spec.get("mine_from"):
        log(f"{args.variant}: no mine_from; nothing to mine")
        return
    sources = [e.path for e in protocol.librispeech(args.shared) if e.speaker in protocol.LIBRISPEECH_TRAIN_SPEAKERS]
    for keyword in args.keywords:
        manifests = variant_dir(args, keyword) / "manifests"
        source = seed_dir(args, keyword, args.seeds[0], spec["mine_from"]) / "checkpoints"
        spotter = load_pretrained(best_checkpoint(source), fold_bn=True)
        mined = mine_hard_negatives(spotter, sources, variant_dir(args, keyword) / "mined",
                                    top=spec.get("mine_top", 600))
        base = manifests / "train_base.jsonl"
        if not base.is_file():
            (manifests / "train.jsonl").replace(base)
        write_manifest(manifests / "train.jsonl", read_manifest(base) + mined * int(spec.get("mine_repeat", 2)))
        scores = [e.params["score"] for e in mined]
        log(f"{args.variant}/{keyword}: {len(mined)} hard negatives from {len(sources)} LibriSpeech utterances, "
            f"scores {min(scores, default=0):.3f}..{max(scores, default=0):.3f}")


def train_keyword(args, keyword: str, spec: dict, seed: int) -> None:
    """Variants with ``train_keyword``: the detector a user gets from ``speechconv train-keyword``. Every
    such variant of a keyword shares one synthetic corpus (``runs/train_keyword_synth/<keyword>``)."""
    options = spec["train_keyword"]
    text = protocol.keyword_text(keyword)
    shared_synth = args.work / "runs" / "train_keyword_synth" / keyword
    if not (shared_synth / "work" / ".synth.done").is_file():
        speechconv("train-keyword", text, "--out", str(shared_synth), "--stage", "synth", "--seed", str(args.seed),
                   "--workers", str(args.workers), "--quiet")
    out = seed_dir(args, keyword, seed) / "model"
    (out / "work").mkdir(parents=True, exist_ok=True)
    for name in ("run.json", ".synth.done"):
        (out / "work" / name).write_bytes((shared_synth / "work" / name).read_bytes())
    if not (out / "work" / "synth").exists():
        (out / "work" / "synth").symlink_to(shared_synth / "work" / "synth")
    extra = []
    if options.get("real"):
        real = protocol.real_training_negatives(args.shared, args.work, seed=args.seed)
        speech = [e.path for e in real if e.engine != "noise"]
        extra += ["--negatives-from", str(link_folder(args.work / "real" / "negatives_links", speech))]
        train_noise, _ = protocol.noise_files(args.shared)
        extra += ["--noise-from", str(link_folder(args.work / "real" / "noise_links", train_noise))]
    representation = options.get("representation", "spectrogram")  # the rows before whisper became the default
    speechconv("train-keyword", text, "--out", str(out), "--minutes", str(options.get("minutes", 30)),
               "--seed", str(seed), "--resume", "--quiet", "--representation", representation, *extra)


def stage_train(args) -> None:
    spec = variants()[args.variant]
    for keyword in args.keywords:
        for seed in args.seeds:
            if "train_keyword" in spec:
                train_keyword(args, keyword, spec, seed)
                continue
            folder = seed_dir(args, keyword, seed)
            path = folder / "config.yaml"
            last = folder / "checkpoints" / "last.ckpt"
            if (folder / "done").is_file() and not args.force:
                log(f"{folder}: trained; skipping")
                continue
            if not path.is_file() or args.force:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(training_config(args, keyword, seed), sort_keys=False))
            start = time.perf_counter()
            if last.is_file() and not args.force:
                speechconv("train", "fit", "--config", str(path), "--ckpt_path", str(last))
            elif spec.get("init_from"):
                _fit_from(path, best_checkpoint(seed_dir(args, keyword, seed, spec["init_from"]) / "checkpoints"))
            else:
                speechconv("train", "fit", "--config", str(path))
            (folder / "done").write_text(f"{time.perf_counter() - start:.0f} s\n")


def _fit_from(config: Path, checkpoint: Path) -> None:
    """Train ``config`` starting from the weights of ``checkpoint`` (fresh optimizer and schedule)."""
    import torch

    from speechconv.training.cli import SpeechconvCLI

    cli = SpeechconvCLI(args=["--config", str(config)], run=False)
    cli.model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    log(f"training {config.parent.name} from the weights of {checkpoint}")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def _streams_of(args, keyword: str) -> tuple[Path, Path]:
    return args.work / "streams" / f"{keyword}.wav", args.work / "streams" / "negatives.wav"


def evaluate_curves(name: str, keyword: str, keyword_stream, negative_stream, out: Path,
                    smoothing: tuple[int, ...], thresholds: np.ndarray | None = None) -> dict:
    """FRR at the FA targets, per-group recall and the DET PNG for one detector's score curves."""
    from speechconv.evaluation import kws

    streams = [keyword_stream, negative_stream]
    points = kws.sweep([keyword_stream], streams, smoothing=smoothing,
                       thresholds=kws.DENSE_THRESHOLDS if thresholds is None else thresholds)
    best = {f"{t:g}": kws.frr_at(points, t) for t in FA_TARGETS}
    result = {"detector": name, "keyword": keyword, "hours": points[0].hours,
              "keywords": points[0].keywords, **{f"frr_at_{t}": (p.frr if p else None) for t, p in best.items()},
              "points": {t: (p.as_dict() if p else None) for t, p in best.items()}}
    kws.plot_det({name: points}, out / f"det_{name}.png", title=f"{keyword}: {name}")
    fa, frr = kws.det_curve(points)
    result["det"] = {"fa_per_hour": fa.tolist(), "frr": frr.tolist()}
    at_one = best[f"{FA_TARGETS[-1]:g}"]
    alarms = kws.top_false_alarms(streams, 10, at_one.smoothing_frames if at_one else 1)
    result["top_false_alarms"] = [a.as_dict() for a in alarms]
    (out / "false_alarms.md").write_text(kws.false_alarm_table(alarms))
    said = [a.truth.get("speaker") or a.truth.get("label") or "?" for a in alarms]
    log(f"{name}/{keyword}: the 10 highest false alarms come from "
        + ", ".join(f"{who} x{said.count(who)}" for who in dict.fromkeys(said)))
    return result



def stage_evaluate(args) -> None:
    """Each seed's detector on both streams; with several seeds also their ensemble (mean score curve)."""
    from speechconv.evaluation import kws

    for keyword in args.keywords:
        curves = [evaluate_seed(args, keyword, seed) for seed in args.seeds]
        if len(curves) < 2:
            continue
        out = variant_dir(args, keyword) / "ensemble" / "eval"
        out.mkdir(parents=True, exist_ok=True)
        keyword_stream = kws.mean_curve([c[0] for c in curves])
        negative_stream = kws.mean_curve([c[1] for c in curves])
        result = evaluate_curves(f"{args.variant} ensemble", keyword, keyword_stream, negative_stream, out, (1, 3, 5))
        result.update(variant=args.variant, seeds=list(args.seeds))
        write_result(args, keyword, out, result, f"ensemble of seeds {','.join(map(str, args.seeds))}")


def stage_ensembles(args) -> None:
    """FRR against ensemble size: for each size k, the mean FRR over every k of the seeds' detectors
    (mean score curves of the scored seeds; nothing is scored again). What `train-keyword --ensemble` buys."""
    import itertools

    from speechconv.evaluation import kws

    if len(args.seeds) < 2:
        raise SystemExit("ensembles: give at least two --seeds")
    table: dict[str, dict[int, dict[str, float]]] = {}
    for keyword in args.keywords:
        curves = [evaluate_seed(args, keyword, seed, write=False) for seed in args.seeds]
        table[keyword] = {}
        for size in range(1, len(curves) + 1):
            frr: dict[str, list[float]] = {f"{t:g}": [] for t in FA_TARGETS}
            for subset in itertools.combinations(curves, size):
                streams = [kws.mean_curve([c[0] for c in subset]), kws.mean_curve([c[1] for c in subset])]
                points = kws.sweep(streams[:1], streams, smoothing=(1, 3, 5), thresholds=kws.DENSE_THRESHOLDS)
                for t in FA_TARGETS:
                    point = kws.frr_at(points, t)
                    frr[f"{t:g}"].append(1.0 if point is None else point.frr)
            table[keyword][size] = {t: float(np.mean(v)) for t, v in frr.items()}
            log(f"{args.variant}/{keyword} ensembles of {size}: " + ", ".join(
                f"mean FRR {100 * v:.1f}% at <= {t} FA/h" for t, v in table[keyword][size].items()))
    out = variant_dir(args) / "ensembles.md"
    lines = [f"FRR at <= {FA_TARGETS[-1]:g} FA/h (<= {FA_TARGETS[0]:g} FA/h) of `{args.variant}` ensembles of k of "
             f"seeds {','.join(map(str, args.seeds))}, the mean over every such k-subset:", "",
             "| k | " + " | ".join(args.keywords) + " | mean |", "|---" * (len(args.keywords) + 2) + "|"]
    for size in range(1, len(args.seeds) + 1):
        cells = [table[k][size] for k in args.keywords]
        mean = {t: float(np.mean([c[t] for c in cells])) for t in cells[0]}
        lines.append(f"| {size} | " + " | ".join(_pair(c) for c in cells) + f" | {_pair(mean)} |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"ensembles: {out}")


def active_seconds(path: str | Path, threshold_db: float = -20.0) -> float:
    """From the first to the last 10-ms frame within ``threshold_db`` of the loudest: how long a clip's
    speech lasts, without its leading and trailing noise."""
    from speechconv.audio import load_audio
    from speechconv.audio.activity import active_span

    wave, sample_rate = load_audio(path, 16000)
    span = active_span(wave.numpy(), sample_rate, threshold_db)
    return 0.0 if span is None else (span[1] - span[0]) / sample_rate


def stage_durations(args) -> None:
    """How long the real keywords last against the TTS ones, and FRR at <= 1 FA/h by thirds of the real
    clips' duration (each seed at its own operating point of the sweep, from its cached curves)."""
    import csv
    import dataclasses

    from speechconv.evaluation import kws

    rows_out = []
    for keyword in args.keywords:
        truth = _streams_of(args, keyword)[0].with_suffix(".csv")
        with open(truth, newline="") as f:
            real = [active_seconds(r["source"]) for r in csv.DictReader(f) if r["label"] == keyword]
        text = protocol.keyword_text(keyword)
        manifest = variant_dir(args, keyword) / "manifests" / "train.jsonl"
        tts = [active_seconds(e["path"]) for e in map(json.loads, manifest.read_text().splitlines())
               if e["label"] == keyword and e.get("text", "").strip().lower() == text]
        edges = np.quantile(real, [1 / 3, 2 / 3])
        thirds = ["short", "middle", "long"]
        groups = [thirds[int(np.searchsorted(edges, d, side="right"))] for d in real]
        frr: dict[str, list[float]] = {g: [] for g in [*thirds, "all"]}
        for seed in args.seeds:
            keyword_stream, negative_stream = evaluate_seed(args, keyword, seed, write=False)
            if len(keyword_stream.keywords) != len(groups):
                raise SystemExit(f"{truth}: {len(groups)} {keyword} rows but {len(keyword_stream.keywords)} spans")
            keyword_stream = dataclasses.replace(keyword_stream, keywords=[
                dataclasses.replace(span, group=group) for span, group in zip(keyword_stream.keywords, groups)])
            streams = [keyword_stream, negative_stream]
            point = kws.frr_at(kws.sweep(streams[:1], streams, smoothing=(1, 3, 5), thresholds=kws.DENSE_THRESHOLDS),
                               FA_TARGETS[-1])
            for group in thirds:
                found, total = point.recall_by_group[group] if point else (0, 1)
                frr[group].append(1 - found / total)
            frr["all"].append(point.frr if point else 1.0)
        rows_out.append((keyword, np.median(real), np.median(tts), edges,
                         {g: float(np.mean(v)) for g, v in frr.items()}))
        log(f"{args.variant}/{keyword}: real median {np.median(real):.2f} s, TTS {np.median(tts):.2f} s; FRR by third "
            + ", ".join(f"{g} {100 * v:.1f}%" for g, v in rows_out[-1][-1].items()))
    lines = [f"`{args.variant}`, seeds {','.join(map(str, args.seeds))}: median active duration (frames within 20 dB "
             "of the loudest) of the real keyword clips and of the TTS training clips of the keyword alone, and the "
             f"mean FRR at <= {FA_TARGETS[-1]:g} FA/h over the seeds among the shortest, middle and longest third "
             "of the real clips:", "",
             "| keyword | real | TTS | real / TTS | thirds split at | FRR short | middle | long | all |",
             "|---|---|---|---|---|---|---|---|---|"]
    for keyword, real_s, tts_s, edges, frr in rows_out:
        cells = " | ".join(f"{100 * frr[g]:.1f}%" for g in ("short", "middle", "long", "all"))
        lines.append(f"| {keyword} | {real_s:.2f} s | {tts_s:.2f} s | {real_s / tts_s:.2f} | {edges[0]:.2f}, "
                     f"{edges[1]:.2f} s | {cells} |")
    out = variant_dir(args) / "durations.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"durations: {out}")


def _pair(frr: dict[str, float]) -> str:
    return f"{100 * frr[f'{FA_TARGETS[-1]:g}']:.1f}% ({100 * frr[f'{FA_TARGETS[0]:g}']:.1f}%)"


def write_result(args, keyword: str, out: Path, result: dict, what: str) -> None:
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    log(f"{args.variant}/{keyword} {what}: " + ", ".join(
        f"FRR {100 * result[f'frr_at_{t:g}']:.1f}% at <= {t:g} FA/h" if result[f"frr_at_{t:g}"] is not None
        else f"<= {t:g} FA/h not reached" for t in FA_TARGETS))


def seed_model(args, keyword: str, seed: int) -> Path:
    """One seed's detector: its model folder (``train_keyword`` variants) or its best checkpoint."""
    folder = seed_dir(args, keyword, seed)
    return folder / "model" if "train_keyword" in variants()[args.variant] else best_checkpoint(folder / "checkpoints")


def evaluate_seed(args, keyword: str, seed: int, write: bool = True):
    """Score both streams with one seed's detector (scores are cached); write its results unless ``write``
    is false. Returns the two score curves."""
    from speechconv.evaluation import kws
    from speechconv.evaluation.streams import load_stream
    from speechconv.pretrained import load_pretrained
    from speechconv.runtime.engines import whisper_model_dir

    folder = seed_dir(args, keyword, seed)
    is_model = "train_keyword" in variants()[args.variant]
    ckpt = seed_model(args, keyword, seed)
    if is_model and whisper_model_dir(ckpt) is not None:  # train-keyword --representation whisper
        from speechconv.runtime import load_model

        spotter = load_model(ckpt, threads=2)
    else:
        spotter = load_pretrained(ckpt, fold_bn=True)
    out = folder / "eval"
    cache = out / (f"cache_model_{(ckpt / 'model.safetensors').stat().st_mtime_ns}" if is_model
                   else f"cache_{ckpt.stem}")
    kw_wav, neg_wav = _streams_of(args, keyword)
    start = time.perf_counter()
    # the wake-word recordings carry no speaker ids: recall is reported per keyword only
    keyword_stream = load_stream(kw_wav, keyword, spotter=spotter, cache_dir=cache,
                                 group_by="label")
    negative_stream = load_stream(neg_wav, keyword, spotter=spotter, cache_dir=cache,
                                  keyword_free=True)
    if not write:
        return keyword_stream, negative_stream
    log(f"{keyword}: scored {(keyword_stream.duration_s + negative_stream.duration_s) / 3600:.2f} h "
        f"in {time.perf_counter() - start:.0f} s with {ckpt.name}")
    if is_model:  # the threshold train-keyword chose on held-out synthetic voices, on real speakers
        detector = spotter.detector
        at_default = kws.operating_point([keyword_stream], [keyword_stream, negative_stream],
                                         detector.get("smoothing_frames", 1), detector["threshold"],
                                         {k: detector[k] for k in ("merge_seconds", "refractory_seconds")})
        log(f"{args.variant}/{keyword} at the model's own threshold: {kws.describe(at_default)}")
    result = evaluate_curves(args.variant, keyword, keyword_stream, negative_stream, out, (1, 3, 5))
    result.update(variant=args.variant, seed=seed, checkpoint=str(ckpt))
    write_result(args, keyword, out, result, f"seed {seed}")
    return keyword_stream, negative_stream


def _anchor_stream(wav: Path, curve, keyword: str, keyword_free: bool):
    """An anchor's output as a stream: pocketsphinx hits (``starts``) as events, openWakeWord as a curve."""
    from speechconv.detect.detector import Event
    from speechconv.evaluation.kws import StreamScores
    from speechconv.evaluation.streams import read_keyword_spans, stream_duration

    spans = [] if keyword_free else read_keyword_spans(wav.with_suffix(".csv"), keyword, group_by="label")
    if "starts" in curve:  # log10 kws thresholds (-300..300) mapped in order onto detector scores in [0, 1]
        events = [Event(float(a), float(t), float(t), float(np.clip((s + 300.0) / 600.0, 0.0, 1.0)))
                  for a, t, s in zip(curve["starts"], curve["times"], curve["scores"])]
        return StreamScores(wav.stem, stream_duration(wav), spans, events=events)
    return StreamScores(wav.stem, stream_duration(wav), spans, times=curve["times"], scores=curve["scores"])


def stage_anchors(args) -> None:
    """pocketsphinx keyphrase search on every keyword; openWakeWord alexa_v0.1 on alexa."""
    for keyword in args.keywords:
        kw_wav, neg_wav = _streams_of(args, keyword)
        out = args.work / "anchors" / keyword
        out.mkdir(parents=True, exist_ok=True)
        names = ["pocketsphinx"] + (["openwakeword"] if keyword == "alexa" else [])
        for name in names:
            if (out / f"{name}.json").is_file() and not args.force:
                continue
            curves = {}
            for wav in (kw_wav, neg_wav):
                cache = out / f"{name}_{wav.stem}.npz"
                if not cache.is_file() or args.force:
                    cmd = [sys.executable, str(HERE / "anchors.py"), name, str(wav), "--out", str(cache)]
                    if name == "pocketsphinx":
                        cmd += ["--keyphrase", protocol.keyword_text(keyword)]
                    log("$ " + " ".join(cmd[1:]))
                    subprocess.run(cmd, check=True, cwd=REPO)
                curves[wav] = np.load(cache)
            kw_stream = _anchor_stream(kw_wav, curves[kw_wav], keyword, keyword_free=False)
            neg_stream = _anchor_stream(neg_wav, curves[neg_wav], keyword, keyword_free=True)
            thresholds = None
            if name == "pocketsphinx":  # hits scored by log10(kws_threshold): sweep the scores themselves
                scores = np.concatenate([curves[w]["scores"] for w in (kw_wav, neg_wav)])
                thresholds = np.unique(np.clip((scores + 300.0) / 600.0, 0.0, 1.0))
            result = evaluate_curves(name, keyword, kw_stream, neg_stream, out, (1,), thresholds)
            (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
            log(f"{name}/{keyword}: FRR {result['frr_at_1']} at <= 1 FA/h")


#: Weights of pocketsphinx's evidence tried by the fusion stage (0: the detector alone).
FUSION_WEIGHTS = (0.0, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15)


def _tail_thresholds(streams, count: int = 240) -> np.ndarray:
    """Thresholds for a score of any scale: quantiles of all frames, dense in the top tail where the
    operating points at a few false alarms per hour lie."""
    frames = np.concatenate([s.scores for s in streams])
    return np.unique(np.quantile(frames, 1.0 - np.logspace(-6.3, -1.3, count)))


def stage_fusion(args) -> None:
    """Each seed's score curves (and their ensemble) fused with pocketsphinx's keyphrase hits
    (:mod:`speechconv.detect.fusion`) at each weight of FUSION_WEIGHTS. Each keyword's weight is chosen on
    the other keywords (the lowest mean FRR at <= 1 FA/h over their seeds), so no keyword's own real clips
    choose its weight. Needs the anchors stage's pocketsphinx hits."""
    import dataclasses

    from speechconv.detect import fusion
    from speechconv.evaluation import kws

    if len(args.keywords) < 2:
        raise SystemExit("fusion: give at least two --keywords (each keyword's weight is chosen on the others)")
    # table[keyword][member][weight] = {FA target: FRR}; members are "seed N" and "ensemble"
    table: dict[str, dict[str, dict[float, dict[str, float]]]] = {}
    for keyword in args.keywords:
        hits = {}
        for stem in (keyword, "negatives"):
            path = args.work / "anchors" / keyword / f"pocketsphinx_{stem}.npz"
            if not path.is_file():
                raise SystemExit(f"{path}: missing; run the anchors stage for {keyword} first")
            hits[stem] = np.load(path)
        members = {f"seed {s}": evaluate_seed(args, keyword, s, write=False) for s in args.seeds}
        if len(args.seeds) > 1:
            pairs = list(members.values())
            members["ensemble"] = (kws.mean_curve([p[0] for p in pairs]), kws.mean_curve([p[1] for p in pairs]))
        table[keyword] = {}
        for member, streams in members.items():
            evidence = [fusion.keyphrase_evidence(s.times, h["starts"], h["times"], h["scores"])
                        for s, h in zip(streams, (hits[keyword], hits["negatives"]))]
            table[keyword][member] = {}
            for weight in FUSION_WEIGHTS:
                fused = [dataclasses.replace(s, scores=fusion.fuse(s.scores, e, weight))
                         for s, e in zip(streams, evidence)]
                points = kws.sweep(fused[:1], fused, smoothing=(1, 3, 5), thresholds=_tail_thresholds(fused))
                best = {f"{t:g}": kws.frr_at(points, t) for t in FA_TARGETS}
                table[keyword][member][weight] = {t: 1.0 if p is None else p.frr for t, p in best.items()}
            log(f"{args.variant}/{keyword} {member} fused with pocketsphinx, FRR at <= 1 FA/h by weight: " + ", ".join(
                f"{w:g}: {100 * v['1']:.1f}%" for w, v in table[keyword][member].items()))
    seeds = [f"seed {s}" for s in args.seeds]
    one, half = f"{FA_TARGETS[-1]:g}", f"{FA_TARGETS[0]:g}"

    def seed_mean(keyword: str, weight: float, target: str = one) -> float:
        return float(np.mean([table[keyword][m][weight][target] for m in seeds]))

    chosen = {k: min(FUSION_WEIGHTS, key=lambda w: (np.mean([seed_mean(o, w) for o in args.keywords if o != k]), w))
              for k in args.keywords}
    anchor = {}
    for keyword in args.keywords:
        path = args.work / "anchors" / keyword / "pocketsphinx.json"
        anchor[keyword] = json.loads(path.read_text())["frr_at_1"] if path.is_file() else None
    ensemble = len(args.seeds) > 1
    header = ["keyword", "weight (chosen on the others)", "detector alone", "fused"]
    header += ["ensemble alone", "ensemble fused"] if ensemble else []
    lines = [f"`{args.variant}` (seeds {','.join(map(str, args.seeds))}) fused with pocketsphinx's keyphrase hits: "
             f"FRR at <= {one} FA/h (in brackets <= {half} FA/h), the mean over the seeds"
             + (" and their ensemble" if ensemble else "") + ". Each keyword's weight is chosen on the other "
             "keywords (leave one keyword out).", "",
             "| " + " | ".join([*header, "pocketsphinx alone"]) + " |", "|---" * (len(header) + 1) + "|"]
    totals: dict[str, list[tuple[float, float]]] = {}
    for keyword in args.keywords:
        w = chosen[keyword]
        cells = {"alone": (seed_mean(keyword, 0.0), seed_mean(keyword, 0.0, half)),
                 "fused": (seed_mean(keyword, w), seed_mean(keyword, w, half))}
        if ensemble:
            cells["ensemble alone"] = tuple(table[keyword]["ensemble"][0.0][t] for t in (one, half))
            cells["ensemble fused"] = tuple(table[keyword]["ensemble"][w][t] for t in (one, half))
        for name, value in cells.items():
            totals.setdefault(name, []).append(value)
        lines.append(f"| {keyword} | {w:g} | " + " | ".join(_pct_pair(*v) for v in cells.values())
                     + f" | {_fmt(anchor[keyword])} |")
    known = [a for a in anchor.values() if a is not None]
    mean_anchor = _fmt(float(np.mean(known))) if len(known) == len(args.keywords) else "n/a"
    lines.append("| mean | | " + " | ".join(_pct_pair(*np.mean(v, axis=0)) for v in totals.values())
                 + f" | {mean_anchor} |")
    lines += ["", f"FRR at <= {one} FA/h by weight (mean over the seeds; 0 is the detector alone):", "",
              "| keyword | " + " | ".join(f"{w:g}" for w in FUSION_WEIGHTS) + " |",
              "|---" * (len(FUSION_WEIGHTS) + 1) + "|"]
    for keyword in [*args.keywords, "mean"]:
        names = args.keywords if keyword == "mean" else [keyword]
        lines.append(f"| {keyword} | " + " | ".join(_fmt(float(np.mean([seed_mean(k, w) for k in names])))
                                                    for w in FUSION_WEIGHTS) + " |")
    out = variant_dir(args) / "fusion.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot_fusion(args, {k: [seed_mean(k, w) for w in FUSION_WEIGHTS] for k in args.keywords}, anchor,
                 variant_dir(args) / "fusion.png")
    log(f"fusion: {out}")


#: Gates tried by the gating stage: pocketsphinx searches only within a pad of the frames scoring at least this.
GATES = (0.05, 0.2, 0.5)
#: Minutes of each stream searched in full by the gating stage, to time the search without a gate.
TIMING_MINUTES = 10.0


def _gated_scores(wav: Path, stream, keyphrase: str, gate: float) -> tuple[np.ndarray, float, float]:
    """``stream``'s scores fused with pocketsphinx searching only around its candidates
    (:func:`speechconv.detect.verify.verify_curve`); returns the fused scores, the seconds of audio searched and
    the CPU seconds spent."""
    from speechconv.detect.keyphrase import KeyphraseSearch
    from speechconv.detect.verify import verify_curve

    cpu = time.process_time()
    fused, verifier = verify_curve(wav, stream.times, stream.scores, KeyphraseSearch(keyphrase), gate=gate)
    return fused, verifier.searched_seconds, time.process_time() - cpu


def _evidence(raw: np.ndarray, fused: np.ndarray, weight: float | None = None) -> np.ndarray:
    """The evidence that fused ``raw`` into ``fused`` at ``weight`` (default: the fusion's), recovered from the
    log-odds; float64 holds it while the fused score stays below 1 - 1e-16."""
    from speechconv.detect import fusion

    weight = fusion.DEFAULT_WEIGHT if weight is None else weight
    p = np.clip(raw, fusion.EPS, 1.0 - fusion.EPS)
    q = np.clip(fused, 1e-300, 1.0 - 1e-16)
    return ((np.log(q) - np.log1p(-q)) - (np.log(p) - np.log1p(-p))) / weight


def _search_rate(wav: Path, keyphrase: str, minutes: float = TIMING_MINUTES) -> float:
    """CPU seconds pocketsphinx spends per hour of audio, searching the first ``minutes`` of ``wav`` in full."""
    import soundfile as sf

    from speechconv.detect.keyphrase import SAMPLE_RATE, KeyphraseSearch

    audio, rate = sf.read(str(wav), frames=int(minutes * 60 * SAMPLE_RATE), dtype="float32")
    search = KeyphraseSearch(keyphrase)
    cpu = time.process_time()
    search.search(audio)
    return (time.process_time() - cpu) / (len(audio) / rate / 3600)


def _detector_rate(args, keyword: str, seed: int, wav: Path, minutes: float = TIMING_MINUTES) -> float:
    """CPU seconds the seed's detector spends per hour of audio, scoring the first ``minutes`` of ``wav``."""
    import soundfile as sf

    from speechconv.detect.runner import as_model
    from speechconv.pretrained import load_pretrained

    spotter = load_pretrained(seed_model(args, keyword, seed), fold_bn=True)
    audio, rate = sf.read(str(wav), frames=int(minutes * 60 * sf.info(str(wav)).samplerate), dtype="float32")
    stream = as_model(spotter).open_stream()
    cpu = time.process_time()
    for start in range(0, len(audio), 120 * rate):
        stream.feed(audio[start:start + 120 * rate])
    stream.finish()
    return (time.process_time() - cpu) / (len(audio) / rate / 3600)


def stage_gating(args) -> None:
    """Two-stage verification: pocketsphinx searches only around the frames where each seed's raw score
    reaches a gate (GATES; :mod:`speechconv.detect.verify`), fused at the default weight. FRR against the
    detector alone and against the search of all the audio (the anchors stage's hits), the share of the
    audio searched and the CPU it took. Results per seed and gate are cached under ``seed<N>/gating/``."""
    import dataclasses

    from speechconv.detect import fusion
    from speechconv.detect.verify import DEFAULT_GATE
    from speechconv.evaluation import kws

    rows: dict[str, dict[str, dict]] = {}  # rows[keyword][member] = {"alone": frr, "full": frr, gate: frr, ...}
    costs: dict[str, dict] = {}
    by_weight: dict[str, list[dict[float, float]]] = {k: [] for k in args.keywords}  # FRR at 1 FA/h per seed
    for keyword in args.keywords:
        streams_wav = _streams_of(args, keyword)
        hits = {}
        for wav in streams_wav:
            path = args.work / "anchors" / keyword / f"pocketsphinx_{wav.stem}.npz"
            if not path.is_file():
                raise SystemExit(f"{path}: missing; run the anchors stage for {keyword} first")
            hits[wav] = np.load(path)
        keyphrase = protocol.keyword_text(keyword)
        rows[keyword] = {}
        shares: dict[float, list[float]] = {g: [] for g in GATES}
        cpus: dict[float, list[float]] = {g: [] for g in GATES}
        hours = 0.0
        for seed in args.seeds:
            streams = evaluate_seed(args, keyword, seed, write=False)
            hours = sum(s.duration_s for s in streams) / 3600

            def frr(curves, streams=streams) -> dict[str, float]:
                fused = [dataclasses.replace(s, scores=c) for s, c in zip(streams, curves)]
                points = kws.sweep(fused[:1], fused, smoothing=(1, 3, 5), thresholds=_tail_thresholds(fused))
                return {f"{t:g}": 1.0 if p is None else p.frr for t in FA_TARGETS for p in [kws.frr_at(points, t)]}

            full = [fusion.fuse(s.scores, fusion.keyphrase_evidence(s.times, hits[w]["starts"], hits[w]["times"],
                                                                    hits[w]["scores"]))
                    for s, w in zip(streams, streams_wav)]
            row = {"alone": frr([s.scores for s in streams]), "full": frr(full)}
            for gate in GATES:
                cache = seed_dir(args, keyword, seed) / "gating" / f"gate{gate:g}.npz"
                if not cache.is_file() or args.force:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    results = [_gated_scores(w, s, keyphrase, gate) for s, w in zip(streams, streams_wav)]
                    np.savez(cache, keyword_scores=results[0][0], negative_scores=results[1][0],
                             searched=sum(r[1] for r in results), cpu=sum(r[2] for r in results))
                    log(f"{args.variant}/{keyword} seed {seed} gate {gate:g}: searched "
                        f"{sum(r[1] for r in results) / 3600:.3f} h of {hours:.2f} h in "
                        f"{sum(r[2] for r in results):.0f} CPU s")
                cached = np.load(cache)
                row[gate] = frr([cached["keyword_scores"], cached["negative_scores"]])
                shares[gate].append(float(cached["searched"]) / 3600 / hours)
                cpus[gate].append(float(cached["cpu"]) / hours)
                if gate == DEFAULT_GATE:  # the product's gate: its evidence at the other weights of the fusion stage
                    evidence = [_evidence(s.scores, cached[name]) for s, name in
                                zip(streams, ("keyword_scores", "negative_scores"))]
                    by_weight[keyword].append({w: frr([fusion.fuse(s.scores, e, w) for s, e in zip(streams, evidence)])
                                               ["1"] for w in FUSION_WEIGHTS})
            rows[keyword][f"seed {seed}"] = row
            log(f"{args.variant}/{keyword} seed {seed}, FRR at <= 1 FA/h: alone {100 * row['alone']['1']:.1f}%, "
                f"full search {100 * row['full']['1']:.1f}%, " + ", ".join(
                    f"gate {g:g} {100 * row[g]['1']:.1f}%" for g in GATES))
        costs[keyword] = {"share": {g: float(np.mean(v)) for g, v in shares.items()},
                          "cpu": {g: float(np.mean(v)) for g, v in cpus.items()},
                          "full": _search_rate(streams_wav[1], keyphrase),
                          "detector": _detector_rate(args, keyword, args.seeds[0], streams_wav[1])}
    one, half = f"{FA_TARGETS[-1]:g}", f"{FA_TARGETS[0]:g}"
    columns = ["alone", "full", *GATES]
    names = ["detector alone", "fused, all audio searched", *(f"fused, gate {g:g}" for g in GATES)]
    lines = [f"`{args.variant}` (seeds {','.join(map(str, args.seeds))}) fused with pocketsphinx at weight "
             "0.075, the search run on all the audio or only within 0.5 s of the frames whose raw score reaches the "
             f"gate: FRR at <= {one} FA/h (in brackets <= {half} FA/h), the mean over the seeds.", "",
             "| keyword | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    means = {c: [] for c in columns}
    for keyword in args.keywords:
        cells = []
        for c in columns:
            pair = tuple(float(np.mean([r[c][t] for r in rows[keyword].values()])) for t in (one, half))
            means[c].append(pair)
            cells.append(_pct_pair(*pair))
        lines.append(f"| {keyword} | " + " | ".join(cells) + " |")
    if len(args.keywords) > 1:
        lines.append("| mean | " + " | ".join(_pct_pair(*np.mean(means[c], axis=0)) for c in columns) + " |")
    lines += ["", "Cost: the share of the audio pocketsphinx searched, and CPU seconds per hour of audio (the detector "
              f"and the full search timed on the first {TIMING_MINUTES:g} minutes of the negative stream):", "",
              "| keyword | detector | full search | " + " | ".join(f"gate {g:g}" for g in GATES) + " |",
              "|---" * (len(GATES) + 3) + "|"]
    for keyword, c in costs.items():
        lines.append(f"| {keyword} | {c['detector']:.0f} s | 100%, {c['full']:.0f} s | " + " | ".join(
            f"{100 * c['share'][g]:.1f}%, {c['cpu'][g]:.0f} s" for g in GATES) + " |")
    if any(by_weight.values()):
        def mean_frr(keywords, weight):
            return float(np.mean([seed[weight] for k in keywords for seed in by_weight[k]]))

        lines += ["", f"FRR at <= {one} FA/h by weight at gate {DEFAULT_GATE:g} (the mean over the seeds; 0 is the "
                  "detector alone; the last column: the weight with the lowest mean over the *other* keywords):", "",
                  "| keyword | " + " | ".join(f"{w:g}" for w in FUSION_WEIGHTS) + " | chosen on the others |",
                  "|---" * (len(FUSION_WEIGHTS) + 2) + "|"]
        for keyword in [*args.keywords, "mean"]:
            names = args.keywords if keyword == "mean" else [keyword]
            others = [k for k in args.keywords if k != keyword]
            chosen = min(FUSION_WEIGHTS, key=lambda w: (mean_frr(others, w), w)) if keyword != "mean" and others \
                else None
            lines.append(f"| {keyword} | " + " | ".join(_fmt(mean_frr(names, w)) for w in FUSION_WEIGHTS)
                         + f" | {'' if chosen is None else f'{chosen:g}'} |")
    out = variant_dir(args) / "gating.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"gating: {out}")


#: Augmented passes over a variant's training clips that the whisper stage encodes (the head trains on all).
WHISPER_PASSES = 3
WHISPER_HEAD_EPOCHS = 8
#: Seconds of audio before and after each second of frames in the live column (``--whisper-live``).
WHISPER_LIVE = (3.0, 0.5)


def _save_atomic(path: Path, write) -> None:
    """Write through a temporary file beside ``path`` and rename, so an interrupted stage leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial" + path.suffix)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _whisper_stream_frames(args, encoder, wav: Path) -> np.ndarray:
    """A stream's whisper encoder frames (cached under ``whisper/streams/``; the same for every variant)."""
    from speechconv.audio import load_audio
    from speechconv.frontends import whisper

    path = args.work / "whisper" / "streams" / f"{wav.stem}.npy"
    if not path.is_file() or args.force:
        audio, _ = load_audio(wav, whisper.SAMPLE_RATE)
        start = time.perf_counter()
        _, frames = whisper.stream_frames(encoder(), audio.float())
        _save_atomic(path, lambda tmp: np.save(tmp, frames.astype(np.float16)))
        log(f"whisper: encoded {wav.name} ({len(audio) / whisper.SAMPLE_RATE / 3600:.2f} h) "
            f"in {time.perf_counter() - start:.0f} s")
    return np.load(path)


def _whisper_live_frames(args, encoder, wav: Path) -> tuple[np.ndarray, float]:
    """A stream's frames as a live stream can have them (:func:`speechconv.frontends.whisper.live_frames`,
    3 s before and 0.5 s after each second), cached under ``whisper/live/``, and the CPU seconds per hour of
    audio that took."""
    from speechconv.audio import load_audio
    from speechconv.frontends import whisper

    path = args.work / "whisper" / "live" / f"{wav.stem}.npy"
    cost_path = path.with_suffix(".json")
    if not path.is_file() or not cost_path.is_file() or args.force:
        audio, _ = load_audio(wav, whisper.SAMPLE_RATE)
        start = time.process_time()
        _, frames = whisper.live_frames(encoder(), audio.float(), WHISPER_LIVE[0], WHISPER_LIVE[1])
        cpu = (time.process_time() - start) / (len(audio) / whisper.SAMPLE_RATE / 3600)
        _save_atomic(path, lambda tmp: np.save(tmp, frames.astype(np.float16)))
        cost_path.write_text(json.dumps({"cpu_seconds_per_hour": cpu}) + "\n")
        log(f"whisper: encoded {wav.name} live in {cpu:.0f} CPU s per hour of audio")
    return np.load(path), json.loads(cost_path.read_text())["cpu_seconds_per_hour"]


def _whisper_training_frames(args, keyword: str, encoder, manifest: Path | None = None,
                             folder: Path | None = None, prefix: str = "epoch") -> tuple:
    """The variant's training clips (or ``manifest``'s; seed 0's augmentation draws), WHISPER_PASSES passes,
    encoded and cached under ``folder`` (default ``runs/<variant>/<keyword>/whisper/features/``)."""
    from speechconv.training.datamodules import AudioManifestDataModule
    from speechconv.training.whisper_head import encoded_passes

    data = dict(training_config(args, keyword, 0)["data"]["init_args"])
    data.update(num_workers=0, batch_size=20)
    if manifest is not None:
        data["train_manifest"] = str(manifest)
    dataset = AudioManifestDataModule(**data)._dataset("train")
    return encoded_passes(encoder(), dataset, folder or variant_dir(args, keyword) / "whisper" / "features",
                          WHISPER_PASSES, prefix=prefix, workers=args.workers, force=args.force,
                          log=lambda m: log(f"whisper/{keyword}: {m}"))


def _whisper_cost(args, encoder, head, minutes: float = TIMING_MINUTES) -> float:
    """CPU seconds per hour of audio of the encoder and the head, on the first minutes of the negative stream."""
    import torch

    from speechconv.audio import load_audio
    from speechconv.frontends import whisper

    audio, _ = load_audio(args.work / "streams" / "negatives.wav", whisper.SAMPLE_RATE)
    audio = audio[: int(minutes * 60 * whisper.SAMPLE_RATE)].float()
    start = time.process_time()
    _, frames = whisper.stream_frames(encoder(), audio)
    head.score_frames(torch.from_numpy(frames))
    return (time.process_time() - start) / (len(audio) / whisper.SAMPLE_RATE / 3600)


def stage_whisper(args) -> None:
    """A keyword head on Whisper's encoder (tiny.en; :mod:`speechconv.frontends.whisper`), a representation
    learned on real speech: the variant's training clips and augmentation (TTS positives only, as always),
    WHISPER_PASSES augmented passes encoded once, one head per seed of ``--seeds`` trained on the frames
    (:mod:`speechconv.training.whisper_head`), both streams scored. With ``--whisper-live`` the heads also
    score frames encoded as a live stream can have them (WHISPER_LIVE)."""
    import dataclasses

    import torch

    from speechconv.evaluation import kws
    from speechconv.evaluation.streams import read_keyword_spans, stream_duration
    from speechconv.frontends import whisper
    from speechconv.training.whisper_head import load_head, save_head, train_head

    cache: dict = {}

    def encoder():
        if "encoder" not in cache:
            cache["encoder"] = whisper.WhisperEncoder(threads=2)
        return cache["encoder"]

    rows: dict[str, dict] = {}
    cost = None
    live_costs: list[float] = []
    for keyword in args.keywords:
        folder = variant_dir(args, keyword) / "whisper"
        wavs = _streams_of(args, keyword)
        stream_frames = [_whisper_stream_frames(args, encoder, wav) for wav in wavs]
        live_frames = []
        if args.whisper_live:
            for wav in wavs:
                frames_live, live_cost = _whisper_live_frames(args, encoder, wav)
                live_frames.append(frames_live)
                live_costs.append(live_cost)
        truths = []  # each stream's truth, without scores: the keyword stream's spans, none in the negatives
        for wav, frames_of in zip(wavs, stream_frames):
            spans = [] if wav == wavs[1] else read_keyword_spans(wav.with_suffix(".csv"), keyword, group_by="label")
            truth = wav.with_suffix(".csv")
            truths.append(kws.StreamScores(wav.stem, stream_duration(wav), spans,
                                           times=(np.arange(len(frames_of)) + 0.5) * whisper.FRAME_SECONDS,
                                           truth_csv=str(truth) if truth.is_file() else None))
        frames = labels = None
        rows[keyword] = {"seeds": {}, "live": []}
        curves = []
        for seed in args.seeds:
            out = folder / f"seed{seed}"
            head_path = out / "head.pt"
            if not head_path.is_file() or args.force:
                if frames is None:
                    frames, labels = _whisper_training_frames(args, keyword, encoder)
                start = time.perf_counter()
                head = train_head(frames, labels, epochs=WHISPER_HEAD_EPOCHS, seed=seed, log=log)
                save_head(head, head_path)
                log(f"whisper/{keyword} seed {seed}: head trained in {time.perf_counter() - start:.0f} s")
            head = load_head(head_path)

            def scored(all_frames, head=head, truths=truths):
                return [dataclasses.replace(truth, scores=head.score_frames(torch.from_numpy(f)).numpy())
                        for truth, f in zip(truths, all_frames)]

            streams = scored(stream_frames)
            result = evaluate_curves("whisper_head", keyword, streams[0], streams[1], out, (1, 3, 5))
            result.update(variant=args.variant, seed=seed, representation="whisper tiny.en encoder")
            write_result(args, keyword, out, result, f"whisper head, seed {seed}")
            rows[keyword]["seeds"][seed] = result
            curves.append(streams)
            if live_frames:
                live_streams = scored(live_frames)
                live_out = out / "live"
                live_out.mkdir(parents=True, exist_ok=True)
                result = evaluate_curves("whisper_head_live", keyword, live_streams[0], live_streams[1], live_out,
                                         (1, 3, 5))
                result.update(variant=args.variant, seed=seed, window_seconds=list(WHISPER_LIVE))
                write_result(args, keyword, live_out, result, f"whisper head, seed {seed}, live frames")
                rows[keyword]["live"].append(result)
            if cost is None:
                cost = _whisper_cost(args, encoder, head)
        if len(curves) > 1:  # the heads' ensemble: the mean of their score curves
            out = folder / "ensemble"
            out.mkdir(parents=True, exist_ok=True)
            mean = [kws.mean_curve([c[i] for c in curves]) for i in range(2)]
            result = evaluate_curves("whisper_head_ensemble", keyword, mean[0], mean[1], out, (1, 3, 5))
            result.update(variant=args.variant, seeds=list(args.seeds), representation="whisper tiny.en encoder")
            seeds = ",".join(map(str, args.seeds))
            write_result(args, keyword, out, result, f"whisper heads' ensemble of seeds {seeds}")
            rows[keyword]["ensemble"] = result
        alone = []
        for seed in args.seeds:
            path = seed_dir(args, keyword, seed) / "eval" / "results.json"
            if path.is_file():
                alone.append(json.loads(path.read_text()))
        rows[keyword]["alone"] = alone
        anchors = {}
        for name in ("pocketsphinx", "openwakeword"):
            path = args.work / "anchors" / keyword / f"{name}.json"
            if path.is_file():
                anchors[name] = json.loads(path.read_text())
        rows[keyword]["anchors"] = anchors
    table = _whisper_table(args, rows, cost, float(np.mean(live_costs)) if live_costs else None)
    (args.work / "runs" / args.variant / "whisper.md").write_text(table)
    print(table)


def _whisper_table(args, rows: dict, cost: float | None, live_cost: float | None = None) -> str:
    def mean(results: list[dict], target: float) -> float | None:
        values = [_frr(r, target) for r in results]
        return None if not values or None in values else float(np.mean(values))

    def cell(results: list[dict]) -> str:
        at_one, at_half = mean(results, 1.0), mean(results, 0.5)
        return "-" if at_one is None else _pct_pair(at_one, at_half)

    seeds = ",".join(map(str, args.seeds))
    lines = [f"Whisper tiny.en encoder + keyword head, trained on the `{args.variant}` clips (TTS positives only); "
             f"FRR at <= 1 FA/h (<= 0.5 FA/h), mean of seeds {seeds}",
             "", "| keyword | whisper head | per seed (<= 1 FA/h) | heads' ensemble | detector alone | pocketsphinx "
                 "| openWakeWord |",
             "|---|---|---|---|---|---|---|"]
    means: dict[str, list] = {"head": [], "alone": [], "ensemble": []}
    for keyword, row in rows.items():
        heads = list(row["seeds"].values())
        per_seed = ", ".join(_fmt(_frr(r, 1.0)) for r in heads)
        anchors = [_fmt(_frr(row["anchors"][n], 1.0)) if n in row["anchors"] else "-"
                   for n in ("pocketsphinx", "openwakeword")]
        ensemble = [row["ensemble"]] if "ensemble" in row else []
        lines.append(f"| {keyword} | {cell(heads)} | {per_seed} | {cell(ensemble)} | {cell(row['alone'])} "
                     f"| {anchors[0]} | {anchors[1]} |")
        means["head"].append(mean(heads, 1.0))
        means["alone"].append(mean(row["alone"], 1.0) if row["alone"] else None)
        means["ensemble"].append(mean(ensemble, 1.0) if ensemble else None)

    def overall(name: str) -> str:
        return "-" if None in means[name] else _fmt(np.mean(means[name]))

    if len(rows) > 1:
        lines.append(f"| mean | {overall('head')} | | {overall('ensemble')} | {overall('alone')} | | |")
    if any(row["live"] for row in rows.values()):
        left, right = WHISPER_LIVE
        lines += ["", f"Live frames (each second encoded from {left + 1 + right:g} s of audio, not padded to 30 s: "
                      f"{left:g} s before it and {right:g} s after), the same heads:", "",
                  "| keyword | whisper head, live frames | per seed (<= 1 FA/h) |", "|---|---|---|"]
        for keyword, row in rows.items():
            lines.append(f"| {keyword} | {cell(row['live'])} | {', '.join(_fmt(_frr(r, 1.0)) for r in row['live'])} |")
        if len(rows) > 1:
            live_means = [mean(row["live"], 1.0) for row in rows.values()]
            lines.append(f"| mean | {'-' if None in live_means else _fmt(np.mean(live_means))} | |")
    if cost is not None:
        lines += ["", f"Cost: the encoder and the head take {cost:.0f} CPU s per hour of audio (2 threads; the first "
                      f"{TIMING_MINUTES:g} minutes of the negative stream, in 30 s windows that overlap by 2 s)."]
    if live_cost is not None:
        lines += [f"Live frames: the encoder {live_cost:.0f} CPU s per hour of audio (the mean over the streams)."]
    return "\n".join(lines) + "\n"


def _plot_fusion(args, frr: dict[str, list[float]], anchor: dict[str, float | None], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for keyword, values in frr.items():
        line, = ax.plot(FUSION_WEIGHTS, [100 * v for v in values], marker="o", label=keyword)
        if anchor.get(keyword) is not None:
            ax.axhline(100 * anchor[keyword], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("weight of pocketsphinx's evidence (0: detector alone)")
    ax.set_ylabel(f"FRR at <= {FA_TARGETS[-1]:g} FA/h (%), mean over seeds")
    ax.set_title(f"{args.variant} fused with pocketsphinx (dotted: pocketsphinx alone)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


ANCHORS = {
    "pocketsphinx": "pocketsphinx keyphrase search, bundled US English model, no training for the keyword",
    "openwakeword": "openWakeWord alexa_v0.1 (TTS-trained head on Google's speech embedding; "
                    "CC BY-NC-SA, measured only)",
}
PUBLISHED = ("Published (Picovoice benchmark, six keywords incl. these four, LibriSpeech test-clean background, "
             "miss rate at 0.1 FA/h): Porcupine 2.7%, Snowboy 31.9%, PocketSphinx 52.0%.")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _pct_pair(at_one: float, at_half: float) -> str:
    return f"{100 * at_one:.1f}% ({100 * at_half:.1f}%)"


def _frr(result: dict, target: float) -> float | None:
    """FRR at <= ``target`` FA/h: the evaluated number, else read off the result's DET curve."""
    key = f"frr_at_{target:g}"
    if key in result or "det" not in result:
        return result.get(key)
    det = result["det"]
    reached = [frr for fa, frr in zip(det["fa_per_hour"], det["frr"]) if fa <= target]
    return min(reached) if reached else None


def _cell(runs: list[dict], target: float) -> tuple[str, float | None]:
    """A table cell for one row and keyword: one run's FRR, or the mean over seeds with their range."""
    values = [_frr(r, target) for r in runs]
    if not values:
        return "-", None
    if any(v is None for v in values):
        return "n/a", None
    mean = float(np.mean(values))
    if len(values) == 1:
        return _fmt(mean), mean
    return f"{_fmt(mean)} ({100 * min(values):.0f}-{100 * max(values):.0f}, {len(values)} seeds)", mean


def _row_name(data: dict) -> str:
    return data["detector"] if "seeds" in data else data.get("variant", data["detector"])


def stage_report(args) -> None:
    """One table per FA target: rows are variants and anchors, columns keywords and the mean."""
    rows: dict[str, dict[str, list[dict]]] = {}  # row -> keyword -> one result per training seed
    for results in sorted((args.work / "runs").glob("*/*/*/eval/results.json")):
        data = json.loads(results.read_text())
        rows.setdefault(_row_name(data), {}).setdefault(data["keyword"], []).append(data)
    order = list(variants())  # the ablation's order: each row adds a lever to the one above it

    def position(name: str) -> tuple[int, int]:
        base = name.removesuffix(" ensemble")
        return (order.index(base) if base in order else len(order), int(base != name))

    rows = dict(sorted(rows.items(), key=lambda item: position(item[0])))
    for results in sorted((args.work / "anchors").glob("*/*.json")):
        data = json.loads(results.read_text())
        rows.setdefault(f"anchor: {data['detector']}", {})[data["keyword"]] = [data]
    lines = []
    for target in (*FA_TARGETS, DIAGNOSTIC_FA):
        lines.append(f"\nFRR (share of real keywords missed) at <= {target:g} false alarms per hour:\n")
        if target == DIAGNOSTIC_FA:
            lines[-1] = lines[-1].replace(":\n", DIAGNOSTIC_NOTE + ":\n")
        lines.append("| detector | " + " | ".join(protocol.KEYWORDS) + " | mean |")
        lines.append("|---" * (len(protocol.KEYWORDS) + 2) + "|")
        for name, by_kw in rows.items():
            cells = [_cell(by_kw.get(k, []), target) for k in protocol.KEYWORDS]
            have = [v for _, v in cells if v is not None]
            mean = _fmt(float(np.mean(have))) if len(have) == len(protocol.KEYWORDS) else "n/a"
            lines.append(f"| {name} | " + " | ".join(text for text, _ in cells) + f" | {mean} |")
    lines.append("\nA row trained with several seeds shows the mean over its seeds, then their range; `ensemble` "
                 "rows average the seeds' score curves (one detector of N models).")
    counts = {k: runs[0]["keywords"] for by_kw in rows.values() for k, runs in by_kw.items()}
    hours = {k: runs[0]["hours"] for by_kw in rows.values() for k, runs in by_kw.items()}
    if counts:
        listed = ", ".join(f"{k} {counts[k]}" for k in protocol.KEYWORDS if k in counts)
        lines.append(f"\nReal clips per keyword: {listed}"
                     f"; false alarms counted over {min(hours.values()):.2f}-{max(hours.values()):.2f} h per keyword "
                     "(the keyword's stream outside its clips, and the negative stream).")
    about = variants()
    lines.append("\n| detector | what it is |\n|---|---|")
    for name in rows:
        variant = name.removeprefix("anchor: ")
        text = about[variant]["about"] if variant in about else ANCHORS.get(variant, "")
        if variant.endswith(" ensemble"):
            text = f"the mean score curve of the {variant.removesuffix(' ensemble')} seeds above"
        lines.append(f"| {name} | {text} |")
    lines.append(PUBLISHED)
    text = "\n".join(lines)
    (args.work / "report.md").write_text(text + "\n")
    print(text)
    _plot_report(args, rows)


def _plot_report(args, rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(protocol.KEYWORDS), figsize=(4 * len(protocol.KEYWORDS), 4.0), sharey=True)
    colors = {name: f"C{i}" for i, name in enumerate(rows)}
    for ax, keyword in zip(axes, protocol.KEYWORDS):
        for name, by_kw in rows.items():
            for i, run in enumerate(by_kw.get(keyword, [])):  # every seed, one colour per row
                det = run["det"]
                ax.step(det["fa_per_hour"], 100 * np.array(det["frr"]), where="post", label=name if i == 0 else None,
                        color=colors[name], lw=1.5 if i == 0 else 0.7)
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.axvline(1.0, color="grey", lw=0.5, ls="--")
        ax.set_title(keyword)
        ax.set_xlabel("false alarms per hour")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("false-reject rate (%)")
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=max(1, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(args.work / "det.png", dpi=100)
    plt.close(fig)
    log(f"wrote {args.work / 'report.md'} and {args.work / 'det.png'}")


# ------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stage_arguments(parser, STAGES)
    parser.add_argument("--work", type=Path, default=REPO / "exp" / "wwb", help="working folder (default: exp/wwb)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with the real data sets (default: ../shared/data)")
    parser.add_argument("--variant", default="voices", help="row of conf/variants.yaml (default: voices)")
    parser.add_argument("--keywords", default=",".join(protocol.KEYWORDS),
                        help="comma-separated subset of the keywords (default: all four)")
    parser.add_argument("--synth-groups", default="",
                        help="synth: corpora (default: classic,neural; also classic_noconf, hard, prose, kokoro)")
    parser.add_argument("--positives", type=int, default=0, help="synth: keyword clips per corpus (default: its own)")
    parser.add_argument("--negatives", type=int, default=0, help="synth: negative clips per corpus")
    parser.add_argument("--workers", type=int, default=2, help="synth: worker processes (default: 2)")
    parser.add_argument("--max-time", default="", help="train: time limit per keyword, DD:HH:MM:SS")
    parser.add_argument("--epochs", type=int, default=0, help="train: override max_epochs")
    parser.add_argument("--seed", type=int, default=0, help="data seed: synthesis, streams, splits (default: 0)")
    parser.add_argument("--seeds", default="0",
                        help="train/evaluate: comma-separated training seeds, one detector each; with several, "
                             "evaluate also scores their ensemble (default: 0)")
    parser.add_argument("--whisper-live", action="store_true",
                        help="whisper: also score frames encoded as a live stream can have them (3 s + 0.5 s pieces)")
    parser.add_argument("--force", action="store_true", help="redo finished outputs")
    args = parser.parse_args(argv)
    args.work, args.shared = args.work.resolve(), args.shared.resolve()
    args.keywords = [k for k in args.keywords.split(",") if k]
    args.synth_groups = [g for g in args.synth_groups.split(",") if g]
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or [0]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give comma-separated integers")
    unknown = [k for k in args.keywords if k not in protocol.KEYWORDS] + [
        g for g in args.synth_groups if g not in SYNTH_GROUPS]
    if unknown:
        parser.error(f"unknown keyword or synth group: {', '.join(unknown)}")
    if args.variant not in variants():
        parser.error(f"--variant {args.variant!r} is not in conf/variants.yaml ({', '.join(variants())})")
    run_stages(chosen_stages(parser, args, STAGES), globals(), args, log, args.variant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
