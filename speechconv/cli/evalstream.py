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
    parser.add_argument("--keyword-manifest", nargs="+", default=[], help="manifest(s) with keyword clips")
    parser.add_argument(
        "--keyword-label",
        default=None,
        help="keep only entries with this label from the keyword manifests (e.g. 'keyword'); "
        "the rest count as other clips",
    )
    parser.add_argument("--other-manifest", nargs="+", default=[], help="manifest(s) with non-keyword clips")
    parser.add_argument("--noise", nargs="*", default=[], help="noise WAV files or folders (looped)")
    parser.add_argument("--out", required=True, help="output WAV")
    parser.add_argument("--csv", default=None, help="ground-truth CSV (default: OUT with .csv)")
    parser.add_argument(
        "--duration", type=float, default=None, help="stream length in seconds (default: each clip once)"
    )
    parser.add_argument("--gap", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN", "MAX"))
    parser.add_argument("--snr", type=float, nargs=2, default=(5.0, 20.0), metavar=("MIN", "MAX"))
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
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
