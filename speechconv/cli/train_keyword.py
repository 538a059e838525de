"""``speechconv train-keyword``: one command from a typed phrase to a model directory for ``detect``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from speechconv.errors import ConfigError

HELP = "train a detector for your own keyword from a typed phrase (synthesis, training, evaluation, packaging)"
EPILOG = """\
stages (each re-runnable with --stage; later stages read what earlier ones wrote under OUT/work):
  synth     keyword and negative clips from every installed TTS voice (see speechconv synth --help)
  prepare   held-out voices for evaluation; generated noise plus --noise-from; --negatives-from cut
            into 2 s training negatives, a fifth of the files held out to count false alarms
  train     whisper (default): 3 augmented passes over the training clips encoded by Whisper's encoder
            (tiny.en, MIT, in the core install), a keyword head trained on them (OUT/work/whisper/).
            spectrogram: OUT/train.yaml (speechconv train fit --config OUT/train.yaml reproduces it), with
            as many epochs as fit --minutes on this machine; progress and time left on stderr. With
            --ensemble N, N models (OUT/train.yaml, OUT/train_member1.yaml, ...), each for --minutes
  evaluate  held-out voices' keywords among held-out negatives in held-out noise: keywords found
            against false alarms per hour, the threshold for --target-fa, OUT/work/eval/det.png
  package   OUT/config.yaml, OUT/model.safetensors, OUT/model.onnx and the model card OUT/README.md

then:  speechconv detect --model OUT recording.wav
An interrupted run (Ctrl-C, SIGTERM, a closed terminal) continues with the same command plus --resume.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-keyword", help=HELP, description=HELP, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phrase", metavar="PHRASE", help="the keyword as typed, e.g. 'hey toaster'")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="model directory to create (new or empty, or an earlier run of the same phrase)")
    parser.add_argument("--negatives-from", nargs="+", default=[], type=Path, metavar="DIR",
                        help="folders or files of real recordings without the keyword (speech, TV, your room): "
                        "the best improvement you can give (default: none)")
    parser.add_argument("--noise-from", nargs="+", default=[], type=Path, metavar="DIR",
                        help="folders or files of background noise to mix in (default: generated noise only)")
    parser.add_argument("--representation", choices=("whisper", "spectrogram"), default="whisper",
                        help="whisper: a keyword head on Whisper's encoder (learned on real speech; finds far more "
                        "real speakers' keywords: recipes/wakeword_benchmark); spectrogram: a TC-ResNet8 on PCEN, "
                        "10x cheaper to run, trained for --minutes (default: whisper)")
    parser.add_argument("--minutes", type=float, default=30.0, metavar="M",
                        help="spectrogram: training time budget in minutes (per model with --ensemble); the number "
                        "of epochs is chosen to fit it (default: 30; synthesis and evaluation come on top). whisper "
                        "encodes 3 augmented passes and trains the head 8 epochs, whatever the budget")
    parser.add_argument("--positives", type=int, default=1500, metavar="N",
                        help="synthetic keyword clips (default: 1500)")
    parser.add_argument("--negatives", type=int, default=1500, metavar="N",
                        help="synthetic negative clips (default: 1500)")
    parser.add_argument("--engines", default=None, metavar="LIST",
                        help="TTS engines, comma-separated (default: every installed one of espeak, flite, "
                        "festival, piper, kokoro)")
    parser.add_argument("--engine-weights", default="", metavar="LIST",
                        help="relative engine frequencies, e.g. 'kokoro=2' (default: uniform)")
    parser.add_argument("--confusable-share", type=float, default=0.0, metavar="P",
                        help="share of the negatives that are phonetic near misses of the keyword (default: 0; "
                        "on real speakers near misses spoken by TTS voices made detectors miss more keywords)")
    parser.add_argument("--ensemble", type=int, default=1, metavar="N",
                        help="train N models with seeds SEED..SEED+N-1, each for --minutes, and package their mean "
                        "score: on real speakers a few more keywords found at the same false alarms, for N times "
                        "the training time and detection cost (default: 1)")
    parser.add_argument("--target-fa", type=float, default=0.5, metavar="PER_HOUR",
                        help="false alarms per hour the default threshold is chosen for (default: 0.5)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="synthesis processes (default: 2)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="training batch size (default: 64)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    parser.add_argument("--stage", nargs="+", default=None, metavar="STAGE",
                        choices=("synth", "prepare", "train", "evaluate", "package"),
                        help="run only these stages (default: all, in order)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an earlier run in OUT: skip finished stages, resume training from last.ckpt")
    parser.add_argument("--quiet", action="store_true", help="no synthesis progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechconv.cli.signals import Terminated, signals_stop_the_run
    from speechconv.cli.synth import parse_engine_weights
    from speechconv.training.keyword_recipe.pipeline import STAGES, KeywordRun, Options

    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise ConfigError(f"--minutes must be > 0, got {args.minutes}")
    if args.positives < 1 or args.negatives < 1:
        raise ConfigError("--positives and --negatives must be >= 1")
    if args.workers < 1 or args.batch_size < 1 or args.ensemble < 1:
        raise ConfigError("--workers, --batch-size and --ensemble must be >= 1")
    if args.ensemble > 1 and args.representation == "whisper":
        raise ConfigError("--ensemble needs --representation spectrogram")
    if not 0.0 <= args.confusable_share <= 1.0:
        raise ConfigError(f"--confusable-share must be in [0, 1], got {args.confusable_share}")
    if not (math.isfinite(args.target_fa) and args.target_fa >= 0):
        raise ConfigError(f"--target-fa must be >= 0, got {args.target_fa}")
    for path in [*args.negatives_from, *args.noise_from]:
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder")
    options = Options(
        phrase=args.phrase, out=args.out, negatives_from=args.negatives_from, noise_from=args.noise_from,
        minutes=args.minutes, positives=args.positives, negatives=args.negatives,
        engines=[e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None,
        engine_weights=parse_engine_weights(args.engine_weights) or None,
        confusable_share=args.confusable_share, workers=args.workers, seed=args.seed,
        target_fa=args.target_fa, batch_size=args.batch_size, ensemble=args.ensemble, resume=args.resume,
        quiet=args.quiet, representation=args.representation,
    )
    stages = [s for s in STAGES if s in args.stage] if args.stage else list(STAGES)
    again = "the same command with --resume continues it"
    try:
        with signals_stop_the_run():
            KeywordRun(options).run(stages)
    except Terminated as stop:
        print(f"speechconv: train-keyword stopped by {stop}; {again}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(f"speechconv: train-keyword interrupted; {again}", file=sys.stderr)
        return 130
    return 0
