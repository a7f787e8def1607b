#!/usr/bin/env bash
# How the shipped device zoo is made: four targets on one 2-core machine, each >= 1,000 random cells
# plus the 100 calibration cells, with the default protocol (auto statistic, adaptive rounds), then
# one mlp-plus predictor each, then the stores packed into the package. Every step resumes.
#   usage: scripts/ship_device_zoo.sh WORKDIR
# Measuring with 2 threads needs a quiet machine: nothing else may run on either core meanwhile
# (a busy core stalls one of the two threads; BENCHMARKS.md, "The device zoo").
# The shipped 2026-11-24 zoo was made this way, except that cifar-b8 ran as two separate profilers
# (seeds 7 and 8) on one store instead of --workers 2, stopped at 1,088 random cells.
set -euo pipefail
WORK=${1:?WORKDIR}
LPM=${LPM:-.venv/bin/lpm}
mkdir -p "$WORK"
SLUG=xeon  # the shipped zoo's CPU (lpm_zoo.hardware.cpu_slug of its model)

# name           backend  device-name    profile   threads  workers
TARGETS=(
  "ort-$SLUG-small    ort   $SLUG         small-b1  1  1"
  "ort-$SLUG-b8       ort   $SLUG         cifar-b8  1  2"
  "ort-$SLUG-t2       ort   $SLUG-t2      cifar-b1  2  1"
  "torch-$SLUG-small  torch $SLUG         small-b1  1  2"
)
for t in "${TARGETS[@]}"; do
  read -r name backend dev profile threads workers <<<"$t"
  db="$WORK/$backend-$dev-$profile.db"
  $LPM profile --backend "$backend" --device-name "$dev" --profile "$profile" --threads "$threads" \
      --samples 1000 --seed 7 --db "$db" --workers "$workers"
  $LPM profile --backend "$backend" --device-name "$dev" --profile "$profile" --threads "$threads" \
      --samples 100 --cells calibration --db "$db"
  $LPM fit --db "$db" --backend "$backend" --device-name "$dev" --profile "$profile" --predictor mlp-plus \
      --name "$name" --zoo-dir lpm_zoo/zoo
  .venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('VACUUM')" "$db"
  gzip -9 -c "$db" > "lpm_zoo/data/measurements/$backend-$dev-$profile.db.gz"
done

# The leave-one-device-out benchmark over the shipped stores (BENCHMARKS.md, "The device zoo").
$LPM transfer --out "$WORK/transfer"
