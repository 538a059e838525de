#!/usr/bin/env bash
# Free Spoken Digit Dataset: TDNN and frequency-CNN, on the official split and the speaker-held-out split.
#   recipes/fsdd/run.sh [--stage S] [--stop-stage S] [models...] [-- LightningCLI overrides]
#     stages: prepare, train, summarize (all by default); default models: tdnn freq_cnn
# Run from the project root. Data: ../shared/data/fsdd (set FSDD_ROOT to change it).
# Noise for the augmentation: generated (runs/fsdd/noise); FSDD_NOISE=DIR copies real recordings from DIR instead.
set -euo pipefail
STAGES=(prepare train summarize)
source "$(dirname "$0")/../stages.sh"
root=${FSDD_ROOT:-../shared/data/fsdd}
noise=()
[[ -n ${FSDD_NOISE:-} ]] && noise=(--noise "$FSDD_NOISE")
models=()
while [[ $# -gt 0 && $1 != "--" ]]; do models+=("$1"); shift; done
[[ ${1:-} == "--" ]] && shift
[[ ${#models[@]} -eq 0 ]] && models=(tdnn freq_cnn)

# prepare: manifests runs/fsdd/{official,speaker}/*.jsonl and noise runs/fsdd/noise/, which conf/fsdd_*.yaml read.
if stage prepare; then
  python recipes/fsdd/prepare.py --root "$root" --out runs/fsdd ${noise[@]+"${noise[@]}"}
fi
mkdir -p runs/fsdd/configs
stage train && for model in "${models[@]}"; do
  for split in official speaker; do
    name=fsdd_${model}_${split}
    # Same config, with the split's manifests and its own run folder.
    sed -e "s#runs/fsdd/official/#runs/fsdd/${split}/#g" -e "s#runs/fsdd_${model}\\b#runs/${name}#g" \
      "conf/fsdd_${model}.yaml" > "runs/fsdd/configs/${name}.yaml"
    start=$(date +%s)
    speechconv train fit --config "runs/fsdd/configs/${name}.yaml" "$@" 2>&1 | tee "runs/${name}.log"
    echo "recipe: ${name} took $(( $(date +%s) - start )) s" | tee -a "runs/${name}.log"
  done
done
if stage summarize; then
  python recipes/fsdd/summarize.py runs/fsdd_*_official runs/fsdd_*_speaker
fi
