"""Can a detector's encoder tell a real voice from a TTS voice? A linear probe on its pooled features.

For each checkpoint: the encoder features (all layers but the output layer, mean and max over time) of
the variant's negative training clips with a voice, without augmentation; a logistic regression is
fitted to say real or synthetic, and its 5-fold cross-validated accuracy is printed next to the share
of the larger class (what guessing gets). Used to check what domain-adversarial training (`dann`) did
to the encoder, against `pcen`.

    python recipes/wakeword_benchmark/domain_probe.py exp/wwb/runs/pcen/alexa exp/wwb/runs/dann/alexa
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from speechconv.audio import load_audio
from speechconv.data.manifest import read_manifest
from speechconv.pretrained import load_pretrained
from speechconv.training.domain_adversarial import UNKNOWN, domain_of
from speechconv.training.phone_task import encode, encoder_of
from speechconv.training.recipe_tools import best_checkpoint


def pooled_features(spotter, waves: list[torch.Tensor]) -> np.ndarray:
    encoder, _ = encoder_of(spotter.model)
    rows = []
    with torch.no_grad():
        for wave in waves:
            features = encode(spotter, encoder, wave[None])
            rows.append(torch.cat([features.mean(-1), features.amax(-1)], dim=1)[0].numpy())
    return np.stack(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="runs/<variant>/<keyword> folders (manifests, seed*/)")
    parser.add_argument("--clips", type=int, default=800, help="negative clips with a voice per run (default: 800)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(1)
    for run in args.runs:
        entries = [e for e in read_manifest(run / "manifests" / "train.jsonl")
                   if e.label == "negative" and domain_of(e.engine) != UNKNOWN]
        rng = np.random.default_rng(args.seed)
        chosen = [entries[i] for i in rng.choice(len(entries), min(args.clips, len(entries)), replace=False)]
        domains = np.array([domain_of(e.engine) for e in chosen])
        waves = [load_audio(e.path, 16000)[0].float()[:24000] for e in chosen]
        for seed_dir in sorted(d for d in run.glob("seed*") if (d / "done").is_file()):  # finished runs only
            spotter = load_pretrained(best_checkpoint(seed_dir / "checkpoints"), fold_bn=True)
            features = pooled_features(spotter, waves)
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            accuracy = cross_val_score(probe, features, domains, cv=5).mean()
            chance = max(domains.mean(), 1 - domains.mean())
            print(f"{seed_dir}: real-vs-synthetic probe accuracy {accuracy:.3f} (guessing {chance:.3f}, "
                  f"{len(chosen)} clips)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
