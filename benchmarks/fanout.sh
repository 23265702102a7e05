#!/usr/bin/env bash
# The wall time of a sequential `dvc repro` against `lstmvision fanout --executor local --jobs JOBS`, each
# from its own fresh clone of this commit with PROFILE applied, in turn (A B A B ...), so that the ratio of
# each pair holds while the machine's speed drifts. Prints one line per run and the ratios.
#   benchmarks/fanout.sh [PROFILE=default] [JOBS=2] [PAIRS=1]
set -euo pipefail
profile=${1:-default} jobs=${2:-2} pairs=${3:-1}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lstmvision-fanout-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true

run() {  # run NAME COMMAND...: a fresh clone beside the original (so ../shared/data resolves alike), timed
    local name=$1; shift
    local dir="$repo/../.fanout-bench-$name"
    rm -rf "$dir" && git clone -q "$repo" "$dir"
    (cd "$dir" && { [ "$profile" = default ] || lstmvision profile "$profile" >/dev/null; })
    local start=$(date +%s%N)
    (cd "$dir" && "$@" >"$scratch/$name.log" 2>&1) || { echo "$name failed: $(tail -1 "$scratch/$name.log")"; exit 1; }
    local ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rm -rf "$dir"
    echo "$name $((ms / 1000)).$((ms % 1000 / 100))" | tee -a "$scratch/times"
}

for pair in $(seq "$pairs"); do
    run "sequential-$pair" python -m dvc repro
    run "fanout-$pair" lstmvision fanout --executor local --jobs "$jobs"
done
echo "machine: $(nproc) cores; profile $profile; fanout --jobs $jobs"
awk '/^sequential/ {s[substr($1, 12)] = $2} /^fanout/ {f[substr($1, 8)] = $2}
     END {for (k in s) printf "pair %s: fanout / sequential = %.1f s / %.1f s = %.2f\n", k, f[k], s[k], f[k] / s[k]}' \
    "$scratch/times"
