"""``speechconv make-stream``: build a long evaluation WAV with ground-truth keyword times."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechconv.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-stream",
        help="concatenate keyword and other clips over background noise, with a ground-truth CSV",
        description="Place keyword and non-keyword clips (from manifests) with random gaps over looping "
        "background noise at a per-clip SNR; write the WAV and a ground-truth CSV "
        "(start, end, label, kind, source, snr_db, text).",
    )
    parser.add_argument("--keyword-manifest", nargs="+", default=[], metavar="MANIFEST",
                        help="JSONL manifest(s) with keyword clips (default: none)")
    parser.add_argument(
        "--keyword-label",
        default=None,
        metavar="LABEL",
        help="keep only entries with this label from the keyword manifests (e.g. 'keyword'); "
        "the rest count as other clips (default: every entry is a keyword clip)",
    )
    parser.add_argument("--other-manifest", nargs="+", default=[], metavar="MANIFEST",
                        help="JSONL manifest(s) with non-keyword clips (default: none)")
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="noise audio files or folders, looped under the whole stream "
                        "(default: none, a silent background)")
    parser.add_argument("--out", required=True, metavar="WAV", help="output WAV file")
    parser.add_argument("--csv", default=None, help="ground-truth CSV (default: OUT with .csv)")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S",
        help="stream length in seconds; clips are reused to fill it (default: each clip once)",
    )
    parser.add_argument("--gap", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN", "MAX"),
                        help="pause between clips in seconds, drawn uniformly from [MIN, MAX] (default: 1 4)")
    parser.add_argument("--snr", type=float, nargs=2, default=(5.0, 20.0), metavar=("MIN", "MAX"),
                        help="clip-to-noise ratio in dB, drawn uniformly per clip from [MIN, MAX] "
                        "(default: 5 20; ignored without --noise)")
    parser.add_argument("--sample-rate", type=int, default=16000, metavar="HZ",
                        help="sample rate of the stream in Hz; clips and noise are resampled (default: 16000)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed for clip order, gaps, SNRs and the noise start; the same seed and "
                        "inputs give the same stream (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.data.evalstream import build_eval_stream
    from speechconv.data.manifest import read_manifest

    if not args.keyword_manifest and not args.other_manifest:
        raise ConfigError("give --keyword-manifest and/or --other-manifest")
    keyword, other = [], []
    for path in args.keyword_manifest:
        for entry in read_manifest(path):
            (keyword if args.keyword_label in (None, entry.label) else other).append(entry)
    for path in args.other_manifest:
        other.extend(read_manifest(path))
    out_csv = args.csv or str(Path(args.out).with_suffix(".csv"))
    rows = build_eval_stream(
        keyword,
        other,
        args.noise,
        args.out,
        out_csv,
        duration_s=args.duration,
        gap_range=tuple(args.gap),
        snr_db_range=tuple(args.snr),
        sample_rate=args.sample_rate,
        seed=args.seed,
    )
    n_keyword = sum(row["kind"] == "keyword" for row in rows)
    print(f"wrote {args.out} and {out_csv}: {len(rows)} clips, {n_keyword} keyword", file=sys.stderr)
    return 0
