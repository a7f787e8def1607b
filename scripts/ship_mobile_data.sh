#!/usr/bin/env bash
# How the ExecuTorch (XNNPACK) store and predictor are made: the 100 calibration cells first (what `lpm adapt`
# measures), then random cells to >= 1,000 in all, a recheck, a fit, the store packed into the package, then
# `lpm adapt` from each other-runtime zoo predictor at N = 20 and `lpm transfer` with this store.
# Every step resumes (Ctrl-C, then run it again). Preparing dominates: each network is exported and lowered
# to XNNPACK (minutes per C=36 network on a 2-core VM), so this takes days of one core (BENCHMARKS.md,
# "A mobile-class runtime"); more --workers share the store.
#   usage: scripts/ship_mobile_data.sh WORKDIR [WORKERS]
# Run it with this machine's real identity (LPM_HOST_IDENTITY unset), never from pytest.
set -euo pipefail
WORK=${1:?WORKDIR}
WORKERS=${2:-1}
LPM=${LPM:-.venv/bin/lpm}
unset LPM_HOST_IDENTITY
mkdir -p "$WORK"
SLUG=$(.venv/bin/python -c "from lpm_zoo.hardware import host_slug; print(host_slug())")
DB="$WORK/executorch-$SLUG-cifar-b1.db"
# --statistic min_ratio: the pilot (16 networks lowered twice) would cost hours here; min_ratio is the ratio
# statistic that repeated best on the shipped whole-network store (BENCHMARKS.md, "The deployed network").
P=(--backend executorch --device cpu --profile cifar-b1 --threads 1 --statistic min_ratio --interleave 4 --db "$DB")

$LPM profile "${P[@]}" --samples 100 --cells calibration --workers "$WORKERS"
$LPM profile "${P[@]}" --samples 1100 --seed 7 --workers "$WORKERS"
$LPM recheck --backend executorch --device cpu --profile cifar-b1 --samples 300 --db "$DB"
$LPM fit --db "$DB" --backend executorch --profile cifar-b1 --predictor lut --name "executorch-$SLUG" --zoo-dir lpm_zoo/zoo
.venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('VACUUM')" "$DB"
gzip -9 -c "$DB" > "lpm_zoo/data/measurements/executorch-$SLUG-cifar-b1.db.gz"

# Across runtimes: each other-runtime source alone at N = 20 (reusing the calibration cells above), then the
# leave-one-device-out benchmark over every bundled store, this one included.
for src in ort-cpu torch-cpu; do
  $LPM adapt --from "$src" --backend executorch --profile cifar-b1 --samples 20 --db "$DB" \
      --name "executorch-$SLUG-from-$src" --zoo-dir "$WORK/zoo" --force --json
done
$LPM transfer --out "$WORK/transfer"
