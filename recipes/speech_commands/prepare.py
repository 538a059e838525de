"""Manifests for the standard 12-class Google Speech Commands task (Warden 2018).

    python recipes/speech_commands/prepare.py SC_ROOT [--out runs/speech_commands/data]

Classes: the ten words yes, no, up, down, left, right, on, off, stop, go; ``_unknown_`` (every other
word, sampled down to ``--unknown-percent`` of the known-word clips of each split); ``_silence_``
(1-s excerpts of ``_background_noise_``, ``--silence-percent`` of the known-word clips of each split).
Splits follow ``validation_list.txt`` / ``testing_list.txt``. Writes ``OUT/train.jsonl``,
``OUT/val.jsonl``, ``OUT/test.jsonl``. Silence excerpts are ``params.start``/``params.end`` windows of
the noise files, drawn with ``--seed`` (non-overlapping placement is not required).

Also copies the ``_background_noise_`` recordings to ``OUT/noise/``, the folder that the ``noise``
augmentation of ``conf/speech_commands_*.yaml`` reads (as in Warden 2018, the same recordings give
the ``_silence_`` class and the training noise).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import os
import random
import shutil
from pathlib import Path

import soundfile as sf

from speechconv.data.augment import AUDIO_SUFFIXES
from speechconv.data.manifest import ManifestEntry, atomic_write_text, write_manifest
from speechconv.data.readers import BACKGROUND_NOISE, read_label_folders
from speechconv.errors import SpeechconvError

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
LABELS = (SILENCE, UNKNOWN, *WORDS)
SPLITS = {"train": "train", "validation": "val", "test": "test"}


def silence_entries(noise_files: list[str], count: int, rng: random.Random, split: str,
                    seconds: float = 1.0) -> list[ManifestEntry]:
    """``count`` random ``seconds``-long windows of the noise files (a round-robin over the files)."""
    entries = []
    durations = {path: sf.info(path).duration for path in noise_files}
    for i in range(count):
        path = noise_files[i % len(noise_files)]
        start = rng.uniform(0.0, max(0.0, durations[path] - seconds))
        entries.append(ManifestEntry(path=path, label=SILENCE, split=split,
                                     params={"start": round(start, 4), "end": round(start + seconds, 4)}))
    return entries


def build_splits(root: str, unknown_percent: float = 10.0, silence_percent: float = 10.0,
                 seed: int = 0) -> dict[str, list[ManifestEntry]]:
    rng = random.Random(seed)
    entries = [dataclasses.replace(e, path=os.path.abspath(e.path)) for e in read_label_folders(root)]
    noise = sorted(e.path for e in entries if e.label == BACKGROUND_NOISE)
    if not noise:
        raise SpeechconvError(f"{root}: no {BACKGROUND_NOISE} folder, needed for the {SILENCE} class")
    if not any(e.split for e in entries if e.label != BACKGROUND_NOISE):
        raise SpeechconvError(f"{root}: no validation_list.txt / testing_list.txt, so no standard split")
    out: dict[str, list[ManifestEntry]] = {}
    for split, name in SPLITS.items():
        clips = [e for e in entries if e.split == split and e.label != BACKGROUND_NOISE]
        known = [dataclasses.replace(e, split=name) for e in clips if e.label in WORDS]
        others = [dataclasses.replace(e, label=UNKNOWN, text=e.label, split=name) for e in clips
                  if e.label not in WORDS]
        rng.shuffle(others)
        n_unknown = min(len(others), math.ceil(len(known) * unknown_percent / 100))
        n_silence = math.ceil(len(known) * silence_percent / 100)
        out[name] = known + others[:n_unknown] + silence_entries(noise, n_silence, rng, name)
    return out


def copy_noise(root: str | os.PathLike, folder: str | os.PathLike) -> list[Path]:
    """Copy ``root/_background_noise_``'s audio files to ``folder`` (its older audio files are removed first)."""
    source, folder = Path(root) / BACKGROUND_NOISE, Path(folder)
    files = sorted(f for f in source.glob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise SpeechconvError(f"{source}: no noise recordings")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.rglob("*"):
        if stale.is_file() and stale.suffix.lower() in AUDIO_SUFFIXES:
            stale.unlink()
    copies = []
    for f in files:
        shutil.copyfile(f, folder / f.name)
        copies.append(folder / f.name)
    listing = "".join(f"{f.name}\n" for f in files)
    atomic_write_text(folder / "SOURCE.txt", f"copied from {source.resolve()}\n{listing}")
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="Speech Commands folder (v0.01 or v0.02, with the split lists)")
    parser.add_argument("--out", default="runs/speech_commands/data")
    parser.add_argument("--unknown-percent", type=float, default=10.0)
    parser.add_argument("--silence-percent", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        splits = build_splits(args.root, args.unknown_percent, args.silence_percent, args.seed)
        noise = copy_noise(args.root, Path(args.out) / "noise")
    except SpeechconvError as err:
        parser.exit(1, f"prepare.py: {err}\n")
    for name, entries in splits.items():
        path = write_manifest(Path(args.out) / f"{name}.jsonl", entries)
        counts = collections.Counter(e.label for e in entries)
        print(f"{path}: {len(entries)} clips " + " ".join(f"{k}={counts[k]}" for k in LABELS))
    print(f"{Path(args.out) / 'noise'}: {len(noise)} noise files copied from {Path(args.root) / BACKGROUND_NOISE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
