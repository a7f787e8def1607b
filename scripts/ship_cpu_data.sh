#!/usr/bin/env bash
# How the shipped CPU measurements and predictors are made: profile, recheck, fit, pack.
# A sequence of lpm commands; every step resumes (Ctrl-C, then run it again). Hours on a 2-core box:
# the two profiles run one thread each, side by side.
#   usage: scripts/ship_cpu_data.sh WORKDIR
# The shipped 2026-11-24 data was made this way, except that the first 1,604 ort/cpu architectures
# were measured with the default protocol (10 warm-up runs, 10 x 10 timed runs, groups of 4); every
# measurement records its own protocol, and `lpm recheck` re-times each with the one it was taken with.
set -euo pipefail
WORK=${1:?WORKDIR}
LPM=${LPM:-.venv/bin/lpm}
LIGHT=(--warmup 3 --rounds 6 --reps 5 --interleave 8)
NAME=(--device-name cpu)  # the shipped data's device name, from before names defaulted to the hardware slug
mkdir -p "$WORK"

$LPM profile --backend ort --device cpu "${NAME[@]}" --profile cifar-b1 --samples 10000 --db "$WORK/ort-cpu.db" --seed 0 "${LIGHT[@]}" &
$LPM profile --backend torch --device cpu "${NAME[@]}" --profile cifar-b1 --samples 3000 --db "$WORK/torch-cpu.db" --seed 1 "${LIGHT[@]}" &
wait

# The data's noise floor: a seeded random subset measured again, with the protocol each was taken with.
$LPM recheck --backend ort --device cpu "${NAME[@]}" --profile cifar-b1 --samples 400 --db "$WORK/ort-cpu.db"
$LPM recheck --backend torch --device cpu "${NAME[@]}" --profile cifar-b1 --samples 150 --db "$WORK/torch-cpu.db"

for b in ort torch; do
  $LPM fit --db "$WORK/$b-cpu.db" --backend $b --device-name cpu --profile cifar-b1 --predictor mlp-plus --zoo-dir lpm_zoo/zoo
  $LPM fit --db "$WORK/$b-cpu.db" --backend $b --device-name cpu --profile cifar-b1 --predictor mlp --name $b-cpu-lpm \
      --zoo-dir lpm_zoo/zoo
  .venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('VACUUM')" "$WORK/$b-cpu.db"
  gzip -9 -c "$WORK/$b-cpu.db" > "lpm_zoo/data/measurements/$b-cpu-cifar-b1.db.gz"
done
