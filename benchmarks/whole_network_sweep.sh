#!/usr/bin/env bash
# The whole-network λ sweep: does a both-cell predictor cut the deployed network's latency at least as
# much as a normal-cell one at the same λ? Searches on digits (the demo's settings), 3 seeds each of
# λ = 0, λ with a normal-only predictor (reduction cell unseen) and λ with a whole-network one, two at
# a time; then every found genotype's whole network is measured on the whole-network predictor's
# profile, in its bundled store's scale. Resumable (searches checkpoint).
#   usage: benchmarks/whole_network_sweep.sh OUTDIR [LAMBDA]   (SEEDS="0 1 2" by default)
# The search-size network (default): NORMAL=ort-xeon-small (small-b1), BOTH=ort-cpu-small-both.
# The deployed C=36 network: NORMAL=ort-cpu BOTH=ort-cpu-both PROFILE=cifar-b1-both \
#   DATA=bundled:ort-cpu-cifar-b1-both benchmarks/whole_network_sweep.sh OUTDIR 0.5
set -euo pipefail
OUT=${1:?OUTDIR}
LAM=${2:-0.5}
LPM=${LPM:-.venv/bin/lpm}
NORMAL=${NORMAL:-ort-xeon-small}
BOTH=${BOTH:-ort-cpu-small-both}
PROFILE=${PROFILE:-small-b1-both}
DATA=${DATA:-bundled:ort-cpu-small-b1-both}
FLAGS=(--dataset digits --method darts --relative --epochs 6 --channels 4 --layers 5 --batch-size 32
       --arch-lr 3e-3 --threads 1 --no-progress --json)
runs=()
for seed in ${SEEDS:-0 1 2}; do
  runs+=("none 0 $seed" "$NORMAL $LAM $seed" "$BOTH $LAM $seed")
done
run_one() {
  read -r pred lam seed <<<"$1"
  local d="$OUT/$pred-l$lam-s$seed"
  if [ "$pred" = none ]; then p=(--predictor "$BOTH" --lambda 0); else p=(--predictor "$pred" --lambda "$lam"); fi
  $LPM search "${p[@]}" --seed "$seed" --out "$d" "${FLAGS[@]}" > "$d.json" 2> "$d.log"
}
todo=()  # the searches not finished yet (a finished one has its result.json), two at a time
for r in "${runs[@]}"; do
  read -r pred lam seed <<<"$r"
  [ -f "$OUT/$pred-l$lam-s$seed/result.json" ] || todo+=("$r")
done
for ((k = 0; k < ${#todo[@]}; k += 2)); do
  run_one "${todo[k]}" &
  if ((k + 1 < ${#todo[@]})); then run_one "${todo[k + 1]}" & fi
  wait
done
echo "predictor lambda seed skip_normal measured_whole_ms"
for r in "${runs[@]}"; do
  read -r pred lam seed <<<"$r"
  d="$OUT/$pred-l$lam-s$seed"
  ms=$($LPM measure --backend ort --profile "$PROFILE" --db "$DATA" \
        --genotype "$d/genotype.json" --json | python3 -c "import json, sys; print(round(json.load(sys.stdin)['latency_ms'], 4))")
  skips=$(python3 -c "import json, sys; print(sum(op == 'skip_connect' for op, _ in json.load(open(sys.argv[1]))['normal']))" "$d/genotype.json")
  echo "$pred $lam $seed $skips $ms"
done
