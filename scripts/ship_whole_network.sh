#!/usr/bin/env bash
# How the shipped whole-network (both-cell) data and predictor are made; every step resumes.
#   usage: scripts/ship_whole_network.sh WORKDIR
set -euo pipefail
WORK=${1:?WORKDIR}
LPM=${LPM:-.venv/bin/lpm}
DB="$WORK/ort-cpu-small-b1-both.db"
mkdir -p "$WORK"
$LPM profile --backend ort --profile small-b1-both --samples 5000 --seed 11 --db "$DB" --workers 2
$LPM recheck --backend ort --profile small-b1-both --samples 200 --db "$DB"
$LPM data restat --db "$DB" --statistic round_min_ratio   # what the recheck named most repeatable
$LPM fit --db "$DB" --backend ort --device-name cpu --profile small-b1-both --predictor ridge \
    --name ort-cpu-small-both --zoo-dir lpm_zoo/zoo
.venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('PRAGMA journal_mode=DELETE'); c.execute('VACUUM')" "$DB"
gzip -9 -c "$DB" > lpm_zoo/data/measurements/ort-cpu-small-b1-both.db.gz
