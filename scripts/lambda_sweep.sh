#!/usr/bin/env bash
# The λ sweep of BENCHMARKS.md ("Search"): latency-aware searches on the built-in digits dataset with a
# shipped predictor, each found cell measured on the predictor's backend and trained with `lpm train`.
# A sequence of lpm commands; every step resumes (searches and trainings checkpoint into OUT).
#   usage: scripts/lambda_sweep.sh OUT DB "LAMBDAS" "SEEDS" [JOBS]
#   e.g.   scripts/lambda_sweep.sh runs/sweep runs/ort-cpu.db "0 0.2 rel0.5 rel1" "0 1 2" 2
# LAMBDAS: a plain number is λ in 1/s (the paper's unit); relX is --relative with λ=X.
set -euo pipefail
OUT=${1:?OUT}; DB=${2:?DB}; LAMBDAS=${3:-"0 0.2 rel0.5 rel1"}; SEEDS=${4:-"0 1 2"}; JOBS=${5:-2}
LPM=${LPM:-.venv/bin/lpm}
SEARCH_FLAGS=${SEARCH_FLAGS:-"--dataset digits --method darts --epochs 6 --channels 4 --layers 5 --batch-size 32 --arch-lr 3e-3 --threads 1 --no-progress"}
mkdir -p "$OUT"

run_one() {  # $1 = lambda spec, $2 = seed
  local spec=$1 seed=$2 lam rel=() dir
  if [[ $spec == rel* ]]; then lam=${spec#rel}; rel=(--relative); else lam=$spec; fi
  dir="$OUT/$spec-s$seed"
  [[ -f $dir/train.json ]] && return 0
  $LPM search --predictor "$PREDICTOR" --lambda "$lam" "${rel[@]}" --seed "$seed" --out "$dir" $SEARCH_FLAGS --json \
      > "$dir.search.json" 2> "$dir.search.log"
  $LPM measure --backend ort --device cpu --profile cifar-b1 --db "$DB" --genotype "$dir/genotype.json" --json \
      > "$dir/measure.json"
  $LPM train --genotype "$dir/genotype.json" --dataset digits --seed "$seed" --threads 1 --out "$dir/train" --json \
      --no-progress > "$dir/train.json.tmp" 2> "$dir.train.log"
  mv "$dir/train.json.tmp" "$dir/train.json"
  echo "done $spec seed $seed"
}
export -f run_one
export OUT DB LPM SEARCH_FLAGS PREDICTOR=${PREDICTOR:-ort-cpu}
for s in $SEEDS; do for l in $LAMBDAS; do echo "$l $s"; done; done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1"'

python3 - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1]); rows = {}
for d in sorted(p for p in out.iterdir() if p.is_dir() and (p / "train.json").exists()):
    spec = d.name.rsplit("-s", 1)[0]
    s = json.loads((d / ("../" + d.name + ".search.json")).resolve().read_text().splitlines()[-1])
    m = json.loads((d / "measure.json").read_text()); t = json.loads((d / "train.json").read_text().splitlines()[-1])
    rows.setdefault(spec, []).append((s.get("predicted_latency_ms"), m["latency_ms"], t.get("test_acc")))
base = statistics.mean(r[1] for r in rows.get("0", [(0, float("nan"), 0)]))
print(f"{'lambda':>8} {'seeds':>5} {'predicted ms':>12} {'measured ms':>11} {'vs λ=0':>7} {'test acc':>8}")
for spec, rs in rows.items():
    pred = statistics.mean(r[0] for r in rs if r[0] is not None); meas = statistics.mean(r[1] for r in rs)
    acc = statistics.mean(r[2] for r in rs if r[2] is not None)
    print(f"{spec:>8} {len(rs):>5} {pred:>12.2f} {meas:>11.2f} {100*(meas-base)/base:>+6.1f}% {100*acc:>7.2f}%")
PY
