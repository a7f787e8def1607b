#!/usr/bin/env bash
# The λ sweep of BENCHMARKS.md ("Search"): latency-aware searches with a shipped predictor, each found
# genotype trained with `lpm train` (the task's defaults) and measured with `lpm measure` on the
# predictor's backend, both as the predictor sees it (its normal cell in DARTS_V2's network, in the
# shipped data's scale) and as it is deployed (the whole found genotype, `cifar-b1-both`). Then a
# table and a Pareto picture (benchmarks/pareto.py). A sequence of lpm commands; every step resumes.
#   usage: benchmarks/lambda_sweep.sh OUT DB "SPECS" "SEEDS" [JOBS]
#   e.g.   benchmarks/lambda_sweep.sh runs/sweep bundled:ort-cpu-cifar-b1 "0 rel0.1 rel0.2 rel0.5" "0 1 2" 2
# SPECS: a plain number is λ in 1/s (the paper's unit); relX is --relative with λ=X; a suffix
# +flag=value adds a search option (rel0.5+max-skip=2: P-DARTS' cap; 0+stop-skip=3: DARTS+);
# ref:NAME trains and measures a published genotype (DARTS_V2, PC_DARTS_cifar) without a search.
# Environment: DATASET (default textures), PREDICTOR (default ort-cpu), SEARCH_FLAGS, LPM.
set -euo pipefail
OUT=${1:?OUT}; DB=${2:?DB}; SPECS=${3:-"0 rel0.1 rel0.2 rel0.5"}; SEEDS=${4:-"0 1 2"}; JOBS=${5:-2}
LPM=${LPM:-.venv/bin/lpm}
DATASET=${DATASET:-textures}
SEARCH_FLAGS=${SEARCH_FLAGS:-"--method darts --epochs 5 --max-steps 40 --channels 4 --layers 5 --batch-size 32 --arch-lr 3e-3 --threads 1 --no-progress"}
mkdir -p "$OUT"

run_one() {  # $1 = spec, $2 = seed
  local spec=$1 seed=$2 lam rel=() extra=() dir geno
  dir="$OUT/$spec-s$seed"
  [[ -f $dir/train.json ]] && return 0
  mkdir -p "$dir"
  if [[ $spec == ref:* ]]; then
    geno=${spec#ref:}
  else
    local base=${spec%%+*} opts=${spec#"${spec%%+*}"} opt
    if [[ $base == rel* ]]; then lam=${base#rel}; rel=(--relative); else lam=$base; fi
    for opt in ${opts//+/ }; do extra+=("--${opt%%=*}" "${opt#*=}"); done
    $LPM search --predictor "$PREDICTOR" --lambda "$lam" "${rel[@]}" "${extra[@]}" --seed "$seed" \
        --dataset "$DATASET" --out "$dir" $SEARCH_FLAGS --json > "$dir/search.json" 2> "$dir/search.log"
    geno=$dir/genotype.json
  fi
  $LPM measure --backend ort --device cpu --profile cifar-b1 --db "$DB" --genotype "$geno" --json > "$dir/measure.json"
  $LPM measure --backend ort --device cpu --profile cifar-b1-both --genotype "$geno" --json > "$dir/measure_whole.json"
  $LPM train --genotype "$geno" --dataset "$DATASET" --seed "$seed" --threads 1 --out "$dir/train" --json \
      --no-progress > "$dir/train.json.tmp" 2> "$dir/train.log"
  mv "$dir/train.json.tmp" "$dir/train.json"
  echo "done $spec seed $seed"
}
export -f run_one
export OUT DB LPM SEARCH_FLAGS DATASET PREDICTOR=${PREDICTOR:-ort-cpu}
for s in $SEEDS; do for l in $SPECS; do echo "$l $s"; done; done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1"'

${PYTHON:-.venv/bin/python} "$(dirname "$0")/pareto.py" "$OUT"
