"""Helpers that training recipes share: the best checkpoint of a run, feature statistics of a corpus."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from speechconv.errors import ConfigError

#: File names of the checkpoints that recipes' ``ModelCheckpoint`` writes: ``epochNN-val_lossX.XXXX.ckpt``.
CHECKPOINT_PATTERN = re.compile(r"val_loss([0-9.]+)\.ckpt$")


def best_checkpoint(folder: str | Path) -> Path:
    """The checkpoint in ``folder`` with the lowest validation loss in its name."""
    scored = []
    for path in Path(folder).glob("epoch*-val_loss*.ckpt"):
        match = CHECKPOINT_PATTERN.search(path.name)
        if match:
            scored.append((float(match.group(1).rstrip(".")), path))
    if not scored:
        raise ConfigError(f"{folder}: no epoch*-val_loss*.ckpt checkpoints; train first")
    return min(scored)[1]


def link_folder(folder: str | Path, paths: list[str]) -> Path:
    """A folder of symbolic links to ``paths`` (numbered, so equal names do not clash): the form in which
    ``train-keyword --negatives-from`` / ``--noise-from`` take a chosen list of files. Existing links stay."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        link = folder / f"{i:05d}_{Path(path).name}"
        if not link.is_symlink():
            link.symlink_to(Path(path).resolve())
    return folder


def fit_global_stats(manifest: str | Path, n: int, seed: int, frontend: dict | None = None,
                     sample_rate: int = 16000) -> tuple[list[float], list[float]]:
    """Per-feature mean and std of un-normalized front-end features over ``n`` random clips of a manifest."""
    import torch

    from speechconv.audio import load_audio
    from speechconv.data.manifest import read_manifest
    from speechconv.frontends import DEFAULT_FRONTEND, build_frontend

    entries = read_manifest(manifest)
    rng = np.random.default_rng(seed)
    picked = [entries[i] for i in rng.choice(len(entries), min(n, len(entries)), replace=False)]
    front = build_frontend(frontend or {**DEFAULT_FRONTEND, "sample_rate": sample_rate, "fmax": 7600.0})
    feats = [front(load_audio(e.path, sample_rate)[0].float().unsqueeze(0))[0] for e in picked]
    stacked = torch.cat(feats, dim=-1)
    return stacked.mean(dim=-1).tolist(), stacked.std(dim=-1).clamp_min(1e-3).tolist()


def add_stage_arguments(parser, stages: tuple[str, ...]) -> None:
    """The recipes' one stage convention: stage names (or ``all``) in any order, or a range with
    ``--stage FIRST --stop-stage LAST``; stages always run in pipeline order."""
    # no argparse choices here: with nargs="*" they reject an empty list (--stage/--stop-stage alone)
    parser.add_argument("stages", nargs="*", metavar="STAGE",
                        help=f"stages to run, in pipeline order: {', '.join(stages)}, or all")
    parser.add_argument("--stage", choices=stages, help="first stage of a range (with --stop-stage)")
    parser.add_argument("--stop-stage", choices=stages, help="last stage of a range")


def chosen_stages(parser, args, stages: tuple[str, ...], everything: tuple[str, ...] | None = None) -> list[str]:
    """The stages ``args`` ask for, in pipeline order; ``all`` means ``everything`` (default: every stage)."""
    unknown = [s for s in args.stages if s not in (*stages, "all")]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(stages)}, all")
    if args.stage or args.stop_stage:
        first = stages.index(args.stage) if args.stage else 0
        last = stages.index(args.stop_stage) if args.stop_stage else len(stages) - 1
        chosen = list(stages[first:last + 1])
    elif "all" in args.stages:
        chosen = list(everything or stages)
    else:
        chosen = [s for s in stages if s in args.stages]
    if not chosen:
        parser.error("name the stages to run, 'all', or --stage/--stop-stage")
    return chosen


def run_stages(chosen: list[str], functions: dict, args, log, label: str = "") -> None:
    """Call ``functions[f"stage_{name}"](args)`` for each chosen stage, logging its start and duration."""
    import time

    for stage in chosen:
        start = time.perf_counter()
        log(f"stage {stage}{f' ({label})' if label else ''}")
        functions[f"stage_{stage}"](args)
        log(f"stage {stage} done in {time.perf_counter() - start:.0f} s")
