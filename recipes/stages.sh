# The recipes' stage convention for run.sh scripts (recipes/*/run.py use speechconv.training.recipe_tools):
# named stages run in pipeline order; `--stage FIRST` and `--stop-stage LAST` choose a range.
# Usage, after `set -euo pipefail`:   STAGES=(prepare train);  source recipes/stages.sh
# It takes --stage/--stop-stage out of "$@" (up to a `--`) and defines `stage NAME`, true when NAME is chosen.
_first=${STAGES[0]}
_last=${STAGES[${#STAGES[@]}-1]}
_rest=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  case $1 in
    --stage) _first=${2:?--stage needs a stage name}; shift 2 ;;
    --stop-stage) _last=${2:?--stop-stage needs a stage name}; shift 2 ;;
    *) _rest+=("$1"); shift ;;
  esac
done
set -- ${_rest[@]+"${_rest[@]}"} "$@"
_index() {
  local i
  for i in "${!STAGES[@]}"; do [[ ${STAGES[$i]} == "$1" ]] && { echo "$i"; return; }; done
  echo "unknown stage '$1'; choose from ${STAGES[*]}" >&2
  exit 2
}
_first_index=$(_index "$_first")
_last_index=$(_index "$_last")
stage() {
  local i
  i=$(_index "$1")
  if (( i >= _first_index && i <= _last_index )); then
    echo "[recipe] stage $1" >&2
    return 0
  fi
  return 1
}
