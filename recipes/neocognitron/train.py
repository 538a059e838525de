"""Train a neocognitron on MNIST: unsupervised Hebbian S-planes, then a supervised linear read-out.

    python recipes/neocognitron/train.py --mnist-dir ../shared/data/mnist --out exp/neocognitron

Writes ``s1_planes.png`` / ``s2_planes.png`` (learned kernels), ``model.pt`` (state dict + config) and
prints the read-out's test accuracy on the 10,000 MNIST test digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from speechconv.data.readers import read_mnist
from speechconv.errors import SpeechconvError
from speechconv.vision.models.neocognitron import Neocognitron


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist-dir", required=True, help="folder with the MNIST IDX files (never downloaded)")
    p.add_argument("--out", default="exp/neocognitron", help="output folder (default exp/neocognitron)")
    p.add_argument("--hebbian-images", type=int, default=5000, help="training images for the S-planes")
    p.add_argument("--readout-images", type=int, default=20000, help="training images for the read-out")
    p.add_argument("--hebbian-epochs", type=int, default=1)
    p.add_argument("--hebbian-lr", type=float, default=0.01, help="Hebbian learning rate per winning cell")
    p.add_argument("--batch-size", type=int, default=32, help="images per Hebbian step")
    p.add_argument("--readout-epochs", type=int, default=15)
    p.add_argument("--readout-lr", type=float, default=1e-3, help="Adam learning rate of the read-out")
    p.add_argument("--planes", type=int, nargs="+", default=[16, 32], help="S-planes per stage")
    p.add_argument("--selectivity", type=float, nargs="+", default=[0.5, 0.5], help="S-cell theta per stage")
    p.add_argument("--inhibition", type=float, nargs="+", default=[0.0, 0.0], help="C-cell bias per stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return p.parse_args(argv)


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255.0).unsqueeze(1)


def batched_features(model: Neocognitron, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([model.features_of(images[i:i + batch]) for i in range(0, len(images), batch)])


def train_readout(model: Neocognitron, feats: torch.Tensor, labels: torch.Tensor, epochs: int, lr: float,
                  generator: torch.Generator, log) -> None:
    """Cross-entropy training of the linear read-out on frozen top C-layer features (Adam, batch 128)."""
    readout = model.classifier
    optimizer = torch.optim.Adam(readout.parameters(), lr)
    readout.train()
    for epoch in range(epochs):
        order = torch.randperm(len(feats), generator=generator)
        total = 0.0
        for start in range(0, len(feats), 128):
            idx = order[start:start + 128]
            loss = F.cross_entropy(readout(feats[idx])[0], labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        log(f"read-out epoch {epoch + 1}: mean loss {total / len(feats):.4f}")
    readout.eval()


def plot_planes(weights: torch.Tensor, path: Path, title: str) -> None:
    """One row per plane, one k x k image per input plane (blue negative, red positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    planes, inputs = weights.shape[:2]
    cols = inputs if inputs > 1 else min(planes, 8)
    rows = planes if inputs > 1 else -(-planes // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6 + 0.4, rows * 0.6 + 0.6), squeeze=False)
    limit = weights.abs().max().item()
    for ax in axes.flat:
        ax.axis("off")
    for p in range(planes):
        for i in range(inputs):
            ax = axes[p, i] if inputs > 1 else axes.flat[p]
            ax.imshow(weights[p, i].numpy(), cmap="bwr", vmin=-limit, vmax=limit)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = print
    train_x, train_y = read_mnist(args.mnist_dir, train=True)
    test_x, test_y = read_mnist(args.mnist_dir, train=False)
    order = torch.randperm(len(train_x), generator=generator)
    hebbian_x = to_float(train_x[order[: args.hebbian_images]])
    readout_idx = order[: args.readout_images]
    stages = len(args.planes)
    config = dict(planes=tuple(args.planes), kernels=(5,) * stages, selectivity=tuple(args.selectivity),
                  pools=(2,) * stages, inhibition=tuple(args.inhibition))
    model = Neocognitron(**config).eval()

    start = time.time()
    wins = model.fit_hebbian(hebbian_x, args.hebbian_epochs, args.batch_size, args.hebbian_lr,
                             generator=generator, log=log)
    log(f"Hebbian learning on {len(hebbian_x)} images: {time.time() - start:.0f} s")
    for i, (layer, counts) in enumerate(zip(model.s_layers(), wins)):
        plot_planes(layer.weight, out / f"s{i + 1}_planes.png", f"S{i + 1} planes (learned, Hebbian WTA)")
        log(f"S{i + 1}: {int((counts > 0).sum())}/{layer.planes} planes learned something")

    start = time.time()
    feats = batched_features(model, to_float(train_x[readout_idx]))
    train_readout(model, feats, train_y[readout_idx], args.readout_epochs, args.readout_lr, generator, log)
    with torch.no_grad():
        scores = model.classifier(batched_features(model, to_float(test_x)))[0]
    accuracy = (scores.argmax(dim=1) == test_y).float().mean().item()
    log(f"read-out training: {time.time() - start:.0f} s")
    log(f"test accuracy (10,000 MNIST test digits): {accuracy:.4f}")
    torch.save({"config": config, "state_dict": model.state_dict()}, out / "model.pt")
    (out / "result.json").write_text(json.dumps({"test_accuracy": accuracy, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpeechconvError as err:
        print(f"train.py: {err}", file=sys.stderr)
        sys.exit(1)
