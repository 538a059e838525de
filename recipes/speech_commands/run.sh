#!/usr/bin/env bash
# Google Speech Commands, standard 12-class task.
#   recipes/speech_commands/run.sh [--stage S] [--stop-stage S] SC_ROOT [ds_cnn|tc_resnet] [LightningCLI overrides]
#     stages: prepare, train (both by default)
# Run from the project root. SC_ROOT is an extracted speech_commands_v0.01 or v0.02 folder.
set -euo pipefail
STAGES=(prepare train)
source "$(dirname "$0")/../stages.sh"
root=${1:?usage: recipes/speech_commands/run.sh SC_ROOT [ds_cnn|tc_resnet] [overrides]}
model=${2:-ds_cnn}
shift $(( $# >= 2 ? 2 : 1 ))
# prepare: runs/speech_commands/data/{train,val,test}.jsonl and runs/speech_commands/data/noise/ (the
# _background_noise_ recordings), which conf/speech_commands_*.yaml read.
if stage prepare; then
  python recipes/speech_commands/prepare.py "$root" --out runs/speech_commands/data
fi
if stage train; then
  start=$(date +%s)
  speechconv train fit --config "conf/speech_commands_${model}.yaml" "$@"
  echo "recipe: speech_commands_${model} took $(( $(date +%s) - start )) s"
fi
