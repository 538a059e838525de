#!/usr/bin/env bash
# LeNet-5 on MNIST: train, then test the best checkpoint (by validation error) on the 10k test set.
#   recipes/mnist_lenet5/run.sh [conf/mnist_lenet5.yaml|conf/mnist_lenet5_aug.yaml] [LightningCLI overrides]
# Run from the project root. Data: ../shared/data/mnist (override: --data.init_args.data_dir DIR).
set -euo pipefail
config=${1:-conf/mnist_lenet5.yaml}
shift || true
start=$(date +%s)
speechconv train fit --config "$config" "$@"
echo "recipe: fit + test took $(( $(date +%s) - start )) s on $(nproc) CPU cores"
