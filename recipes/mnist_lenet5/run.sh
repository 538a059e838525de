#!/usr/bin/env bash
# LeNet-5 on MNIST: train, then test the best checkpoint (by validation error) on the 10k test set.
#   recipes/mnist_lenet5/run.sh [--stage S] [--stop-stage S] [CONFIG] [MNIST_DIR] [LightningCLI overrides]
#     stages: data (link MNIST_DIR), train (fit + test); both by default
#     CONFIG     conf/mnist_lenet5.yaml (default), conf/mnist_lenet5_aug.yaml or another conf/mnist_*.yaml
#     MNIST_DIR  a folder with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...), e.g. ../shared/data/mnist
# Run from the project root. The configs read data_dir runs/mnist/data. The data stage links runs/mnist/data to
# MNIST_DIR when one is given; without one, runs/mnist/data must already hold the files (nothing is
# downloaded).
set -euo pipefail
STAGES=(data train)
source "$(dirname "$0")/../stages.sh"
config=${1:-conf/mnist_lenet5.yaml}
shift || true
data=runs/mnist/data
if [[ $# -gt 0 && $1 != -* ]]; then
  mnist_dir=$1
  shift
fi
if [[ -n ${mnist_dir:-} ]] && stage data; then
  [[ -d $mnist_dir ]] || { echo "run.sh: $mnist_dir is not a folder" >&2; exit 1; }
  if [[ -e $data && ! -L $data ]]; then
    echo "run.sh: $data exists and is not a link; remove it to use $mnist_dir" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$data")"
  ln -sfn "$(cd "$mnist_dir" && pwd)" "$data"
  echo "$data -> $(readlink "$data")"
fi
if stage train; then
  start=$(date +%s)
  speechconv train fit --config "$config" "$@"
  echo "recipe: fit + test took $(( $(date +%s) - start )) s on $(nproc) CPU cores"
fi
