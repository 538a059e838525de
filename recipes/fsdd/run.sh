#!/usr/bin/env bash
# Free Spoken Digit Dataset: TDNN and frequency-CNN, on the official split and the speaker-held-out split.
#   recipes/fsdd/run.sh [models...] [-- LightningCLI overrides]     (default models: tdnn freq_cnn)
# Run from the project root. Data: ../shared/data/fsdd (set FSDD_ROOT to change it).
set -euo pipefail
root=${FSDD_ROOT:-../shared/data/fsdd}
models=()
while [[ $# -gt 0 && $1 != "--" ]]; do models+=("$1"); shift; done
[[ ${1:-} == "--" ]] && shift
[[ ${#models[@]} -eq 0 ]] && models=(tdnn freq_cnn)

python recipes/fsdd/prepare.py --root "$root" --out runs/fsdd
mkdir -p runs/fsdd/configs
for model in "${models[@]}"; do
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
python recipes/fsdd/summarize.py runs/fsdd_*_official runs/fsdd_*_speaker
