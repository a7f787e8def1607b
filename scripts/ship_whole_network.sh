#!/usr/bin/env bash
# How the shipped whole-network (both-cell) data and predictors are made; every step resumes.
#   usage: scripts/ship_whole_network.sh WORKDIR
# The shipped data's device name is `cpu` (from before names defaulted to the hardware slug).
set -euo pipefail
WORK=${1:?WORKDIR}
LPM=${LPM:-.venv/bin/lpm}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK"

pack() {  # a store as package data: checkpointed, one file, vacuumed, gzip -9
  $PY -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('PRAGMA journal_mode=DELETE'); c.execute('VACUUM')" "$1"
  gzip -9 -c "$1" > "lpm_zoo/data/measurements/$2.db.gz"
}

# The search-size network (C=16, 8 cells): ~5 minutes.
DB="$WORK/ort-cpu-small-b1-both.db"
$LPM profile --backend ort --device-name cpu --profile small-b1-both --samples 5000 --seed 11 --db "$DB" --workers 2
$LPM recheck --backend ort --device-name cpu --profile small-b1-both --samples 200 --db "$DB"
$LPM data restat --db "$DB" --statistic round_min_ratio   # what the recheck named most repeatable
$LPM fit --db "$DB" --backend ort --device-name cpu --profile small-b1-both --predictor ridge \
    --name ort-cpu-small-both --zoo-dir lpm_zoo/zoo
pack "$DB" ort-cpu-small-b1-both

# The deployed network (C=36, 20 cells), what `make demo` searches with: ~50 minutes on 2 cores.
DB="$WORK/ort-cpu-cifar-b1-both.db"
$LPM profile --backend ort --device-name cpu --profile cifar-b1-both --samples 5000 --seed 11 --db "$DB" --workers 2
$LPM recheck --backend ort --device-name cpu --profile cifar-b1-both --samples 200 --db "$DB"
$LPM profile --backend ort --device-name cpu --profile cifar-b1-both --samples 10000 --seed 11 --db "$DB" --workers 2
$LPM data restat --db "$DB" --statistic min_ratio   # the most repeatable ratio statistic of the recheck
$LPM fit --db "$DB" --backend ort --device-name cpu --profile cifar-b1-both --predictor mlp-split \
    --test-size 1000 --name ort-cpu-both --zoo-dir lpm_zoo/zoo
pack "$DB" ort-cpu-cifar-b1-both
