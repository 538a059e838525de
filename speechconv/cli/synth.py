"""``speechconv synth``: render a synthetic keyword corpus with offline TTS voices."""

from __future__ import annotations

import argparse
import sys
import time

from speechconv.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesize keyword / confusable-negative clips with offline TTS",
        description="Render keyword clips (alone and in carrier phrases) and negatives "
        "(phonetic confusables, "
        "random words, everyday phrases) with random espeak-ng / flite / festival / piper voices, "
        "as 16-bit mono WAV plus DIR/manifest.jsonl.",
    )
    parser.add_argument("--keyword", required=True, help="keyword text, e.g. 'hello'")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, required=True, help="number of keyword clips")
    parser.add_argument("--negatives", type=int, default=0, help="number of negative clips (default 0)")
    parser.add_argument(
        "--engines",
        default="espeak,flite,festival,piper",
        help="comma-separated engines (missing ones are skipped)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.data.synth import synthesize_corpus

    if args.n < 0 or args.negatives < 0:
        raise ConfigError("--n and --negatives must be >= 0")
    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    start = time.perf_counter()
    entries = synthesize_corpus(
        args.keyword,
        args.out,
        args.n,
        args.negatives,
        engines=engines,
        seed=args.seed,
        workers=args.workers,
        sample_rate=args.sample_rate,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - start
    voices = len({(e.engine, e.voice) for e in entries})
    print(
        f"wrote {len(entries)} clips ({voices} distinct voices) and {args.out}/manifest.jsonl "
        f"in {elapsed:.1f} s ({len(entries) / elapsed:.1f} clips/s)",
        file=sys.stderr,
    )
    return 0
