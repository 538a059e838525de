"""``speechconv evaluate``: false-reject rate against false alarms per hour on streams with ground truth."""

from __future__ import annotations

import argparse
import json
import math
import sys

from speechconv.errors import ConfigError

EPILOG = """\
Each STREAM is an audio file with a ground-truth CSV beside it (same name, .csv; columns
start,end,label[,speaker|group|source]) as `speechconv make-stream` writes; --truth gives them
explicitly, in the order of the streams. Rows whose label is the keyword are the keywords to find.

Scores come from a model (--model: every detector setting is swept over its score curves) or from
the output of `speechconv detect` (--detections CSV/JSONL: the sweep keeps events whose score is at
or above each threshold). With --model, --verify evaluates `speechconv detect --verify`: each curve is
fused with pocketsphinx's search around its candidates (same options), and the sweep is denser near 1,
where fused scores crowd: the way to choose a threshold for --verify on your own negatives.

A keyword is found when a detection's peak lies in [start - early, end + late]; a detection whose peak
lies in no keyword window is a false alarm. FRR (share of keywords missed) is counted over the STREAMs,
false alarms per hour over the --fa-stream files, or over the STREAMs themselves when none are given.

Output: a table on stdout (the model's own operating point, then the best FRR at each --fa-targets
value) and recall per group (speaker, voice, ...) at the model's point and at the first target;
--json writes every number and the whole sweep, --det a DET curve PNG. The highest-scoring false
alarms are listed with the ground-truth row around each (speaker, source, text): at strict targets a
handful of moments set the FRR."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="FRR against false alarms per hour on streams with ground truth; DET curve",
        description="Keyword-spotting evaluation: FRR at false-alarm rates, per-group recall, DET curve.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("streams", nargs="+", metavar="STREAM", help="audio stream with a ground-truth CSV beside it")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME_OR_PATH",
                        help="bundled name, model directory, exported .onnx file (onnx engine) or Lightning .ckpt "
                        "(torch engine)")
    source.add_argument("--detections", metavar="FILE", help="CSV or JSONL written by `speechconv detect`")
    parser.add_argument("--truth", nargs="+", metavar="CSV",
                        help="ground-truth CSVs, one per STREAM (default: beside each STREAM)")
    parser.add_argument("--fa-stream", nargs="+", default=[], metavar="AUDIO",
                        help="keyword-free streams on which false alarms per hour are counted (default: the STREAMs)")
    parser.add_argument("--keyword", metavar="LABEL",
                        help="ground-truth label to find (default: the model's keyword; required with --detections)")
    parser.add_argument("--fa-targets", default="0.5,1", metavar="LIST",
                        help="false alarms per hour at which to report the best FRR (default: 0.5,1)")
    parser.add_argument("--smoothing", default="1,2,3,5", metavar="LIST",
                        help="smoothing windows (frames) to sweep with --model (default: 1,2,3,5)")
    parser.add_argument("--group-by", metavar="COLUMN",
                        help="ground-truth column for per-group recall (default: speaker, group or source)")
    parser.add_argument("--early", type=float, default=0.1, metavar="S",
                        help="a peak up to S seconds before a keyword starts finds it (default: 0.1)")
    parser.add_argument("--late", type=float, default=0.5, metavar="S",
                        help="a peak up to S seconds after a keyword ends finds it (default: 0.5)")
    parser.add_argument("--top-false-alarms", type=int, default=10, metavar="N",
                        help="list the N highest-scoring false alarms with what the ground truth says was said "
                        "there: the moments that set the FRR at strict targets (default: 10; 0: none)")
    parser.add_argument("--json", metavar="FILE", help="write every number and the sweep as JSON")
    parser.add_argument("--det", metavar="PNG", help="write the DET curve as a PNG")
    parser.add_argument("--cache", metavar="DIR", help="keep score curves here (.npz) and reuse them")
    parser.add_argument("--engine", choices=("auto", "torch", "onnx"), default="auto",
                        help="with --model: torch, or onnx (model.onnx on onnxruntime, no PyTorch needed); auto: "
                        "torch when it is installed, else onnx (default: auto)")
    from speechconv.cli.detect import add_verify_options

    add_verify_options(parser)
    parser.set_defaults(func=run)


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"{what}: expected non-negative numbers, got {text!r}")
    return values


def _verified(args, keyword_streams, fa_streams, verify, search):
    """The streams' score curves fused with the gated keyphrase search of their audio, as detect --verify."""
    import dataclasses

    from speechconv.detect.verify import verify_curve

    def fused(stream, wav):
        scores, verifier = verify_curve(wav, stream.times, stream.scores, search, weight=verify.weight,
                                        gate=verify.gate)
        print(f"{wav}: pocketsphinx searched {verifier.searched_seconds:.1f} of {stream.duration_s:.1f} s",
              file=sys.stderr)
        return dataclasses.replace(stream, scores=scores)

    verified = [fused(s, w) for s, w in zip(keyword_streams, args.streams)]
    if fa_streams is keyword_streams:
        return verified, verified
    return verified, [fused(s, w) for s, w in zip(fa_streams, args.fa_stream)]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from speechconv.data.manifest import atomic_write_text
    from speechconv.evaluation import kws
    from speechconv.evaluation.streams import load_stream, read_detections

    if args.det:
        from speechconv.cli.detect import require_matplotlib

        require_matplotlib("--det")
    targets = _floats(args.fa_targets, "--fa-targets")
    smoothing = tuple(int(v) for v in _floats(args.smoothing, "--smoothing"))
    if any(w < 1 for w in smoothing):
        raise ConfigError("--smoothing: windows must be >= 1 frame")
    if args.truth and len(args.truth) != len(args.streams):
        raise ConfigError(f"--truth: {len(args.truth)} files for {len(args.streams)} streams")
    from speechconv.cli.detect import check_verify_args, verify_from_args

    check_verify_args(args)
    if args.verify and not args.model:
        raise ConfigError("--verify needs --model")
    spotter = events = verify = search = None
    detector_options: dict = {}
    if args.model:
        from speechconv.cli.detect import resolve_model
        from speechconv.runtime import load_model

        spotter = load_model(resolve_model(args.model), args.engine)  # either engine; BN folded for inference
        verify, search = verify_from_args(args, spotter)  # before any scoring: a word pocketsphinx lacks stops here
        keyword = args.keyword or spotter.keyword
        detector_options = {k: spotter.detector[k] for k in ("merge_seconds", "refractory_seconds")
                            if k in spotter.detector}
        default = (int(spotter.detector.get("smoothing_frames", 1)), float(spotter.detector.get("threshold", 0.5)))
    else:
        if not args.keyword:
            raise ConfigError("--keyword is needed with --detections")
        keyword = args.keyword
        events = read_detections(args.detections)
        smoothing = (1,)
        found = [e.score for evs in events.values() for e in evs]
        default = (1, min(found) if found else 0.5)

    common = dict(spotter=spotter, events=events, cache_dir=args.cache, group_by=args.group_by)
    truths = args.truth or [None] * len(args.streams)
    keyword_streams = [load_stream(w, keyword, truth=t, **common) for w, t in zip(args.streams, truths)]
    fa_streams = [load_stream(w, keyword, keyword_free=True, **common) for w in args.fa_stream] or keyword_streams
    if not sum(len(s.keywords) for s in keyword_streams):
        raise ConfigError(f"no keyword labelled {keyword!r} in the ground truth of the streams")

    thresholds = kws.THRESHOLDS
    if verify is not None:
        keyword_streams, fa_streams = _verified(args, keyword_streams, fa_streams, verify, search)
        thresholds = kws.DENSE_THRESHOLDS
    if events is not None:  # the detections' own scores are where the curve changes
        thresholds = np.unique(np.concatenate([thresholds, [e.score for evs in events.values() for e in evs]]))
        thresholds = thresholds[thresholds >= default[1]]
    options = dict(detector_options=detector_options, early_s=args.early, late_s=args.late)
    points = kws.sweep(keyword_streams, fa_streams, smoothing=smoothing, thresholds=thresholds, **options)
    at_default = kws.operating_point(keyword_streams, fa_streams, default[0], default[1], **options)
    best = {target: kws.frr_at(points, target) for target in targets}

    own = "model's operating point" + (" (its threshold on the fused scores)" if verify is not None else "")
    rows = [(own if spotter is not None else "all detections", at_default)]
    rows += [(f"best at <= {t:g} FA/h", p) for t, p in best.items()]
    hours = at_default.hours
    print(f"keyword {keyword!r}: {at_default.keywords} in {len(keyword_streams)} stream(s); "
          f"false alarms counted over {hours:.2f} h")
    print("| operating point | FRR | found | FA/h | false alarms | threshold | smoothing |")
    print("|---|---|---|---|---|---|---|")
    for name, p in rows:
        if p is None:
            print(f"| {name} | not reached | | | | | |")
            continue
        print(f"| {name} | {100 * p.frr:.2f}% | {p.found}/{p.keywords} | {p.fa_per_hour:.2f} | "
              f"{p.false_alarms} | {p.threshold:g} | {p.smoothing_frames} |")
    first = best[targets[0]] if targets else None
    print(f"\nrecall per group at the {rows[0][0]}:")
    print(kws.group_table(at_default), end="")
    if first is not None:
        print(f"\nrecall per group at the best point at <= {targets[0]:g} FA/h:")
        print(kws.group_table(first), end="")

    alarms = []
    if args.top_false_alarms > 0:
        smoothing_of_top = first.smoothing_frames if first is not None else default[0]
        alarms = kws.top_false_alarms(fa_streams, args.top_false_alarms, smoothing_of_top,
                                      floor=0.05 if spotter is not None else default[1], **options)
        print(f"\nthe {len(alarms)} highest-scoring false alarms (smoothing {smoothing_of_top}):")
        print(kws.false_alarm_table(alarms), end="")

    if args.json:
        from speechconv.detect import fusion
        from speechconv.detect.verify import DEFAULT_GATE

        result = {
            "keyword": keyword,
            "source": args.model or args.detections,
            "verify": None if verify is None else {
                "keyphrase": verify.keyphrase,
                "weight": fusion.DEFAULT_WEIGHT if verify.weight is None else verify.weight,
                "gate": DEFAULT_GATE if verify.gate is None else verify.gate},
            "streams": [str(w) for w in args.streams],
            "fa_streams": [str(w) for w in args.fa_stream] or [str(w) for w in args.streams],
            "match_window_s": [args.early, args.late],
            "operating_point": at_default.as_dict(),
            "best": {f"{t:g}": (p.as_dict() if p else None) for t, p in best.items()},
            "sweep": [p.as_dict() for p in points],
            "top_false_alarms": [a.as_dict() for a in alarms],
        }
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    if args.det:
        curves = {f"smoothing {w}": [p for p in points if p.smoothing_frames == w] for w in smoothing}
        kws.plot_det(curves, args.det, {rows[0][0]: at_default}, title=f"{keyword}: DET curve")
    if args.json or args.det:
        print("\nwrote " + ", ".join(p for p in (args.json, args.det) if p), file=sys.stderr)
    return 0

