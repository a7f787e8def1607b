#!/usr/bin/env bash
# Does a task punish degenerate cells? DARTS_V2 against a normal cell of 8 skip_connect (DARTS_V2's
# reduction cell), each trained with `lpm train`'s defaults for the task, over several seeds, two at a
# time on one thread each. Prints each run and the mean, min and max test accuracy per genotype.
# Resumable: a finished training's JSON is kept and not rerun.
#   usage: benchmarks/task_gap.sh OUT [DATASET] [SEEDS]
#   e.g.   benchmarks/task_gap.sh runs/gap textures "0 1 2"
set -euo pipefail
OUT=${1:?OUT}; DATASET=${2:-textures}; SEEDS=${3:-"0 1 2"}
LPM=${LPM:-.venv/bin/lpm}
mkdir -p "$OUT"
# DARTS_V2's reduction cell with an all-skip_connect normal cell: the collapse DARTS is known for.
cat > "$OUT/skip8.json" <<'EOF'
{"normal": [["skip_connect", 0], ["skip_connect", 1], ["skip_connect", 0], ["skip_connect", 1],
            ["skip_connect", 0], ["skip_connect", 1], ["skip_connect", 0], ["skip_connect", 1]],
 "normal_concat": [2, 3, 4, 5],
 "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
            ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
 "reduce_concat": [2, 3, 4, 5]}
EOF
run_one() {  # $1 = genotype name (DARTS_V2 or skip8), $2 = seed
  local g=$1 seed=$2 spec=$1
  [[ $g == skip8 ]] && spec="$OUT/skip8.json"
  local f="$OUT/$g-s$seed.json"
  [[ -s $f ]] && return 0
  $LPM train --genotype "$spec" --dataset "$DATASET" --seed "$seed" --threads 1 --no-progress --json \
      --out "$OUT/$g-s$seed" > "$f.tmp" 2> "$OUT/$g-s$seed.log"
  mv "$f.tmp" "$f"
}
export -f run_one
export OUT DATASET LPM
for s in $SEEDS; do for g in DARTS_V2 skip8; do echo "$g $s"; done; done | xargs -P 2 -L 1 bash -c 'run_one "$0" "$1"'

python3 - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1]); accs = {}
for f in sorted(out.glob("*-s*.json")):
    r = json.loads(f.read_text().splitlines()[-1])
    g = f.name.rsplit("-s", 1)[0]
    accs.setdefault(g, []).append(100 * r["test_acc"])
    print(f"{f.stem:>14}  test acc {100 * r['test_acc']:6.2f}%  ({r['seconds']:.0f} s)")
for g, a in accs.items():
    print(f"{g:>14}  mean {statistics.mean(a):6.2f}%  min {min(a):6.2f}%  max {max(a):6.2f}%  ({len(a)} seeds)")
if {"DARTS_V2", "skip8"} <= accs.keys():
    print(f"DARTS_V2 - skip8: {statistics.mean(accs['DARTS_V2']) - statistics.mean(accs['skip8']):+.2f} points")
PY
