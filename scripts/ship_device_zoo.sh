#!/usr/bin/env bash
# How the shipped device zoo is made: six targets on one 2-core machine, each >= 1,000 random cells
# plus the 100 calibration cells, with the default protocol (auto statistic, adaptive rounds), then
# one predictor each (`lut`: nothing beat it on these stores), then the stores packed into the package. Every step resumes.
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

# The two ISA-capped targets time the same chip with its kernels held to AVX2 (like a CPU without
# AVX-512) or to SSE4.1 (ATen's default kernels, oneDNN SSE4.1: a very different cost per operation);
# the cap is in each store's fingerprint and device name. They were measured on 2026-11-25 with the
# 100 calibration cells first, then random cells up to 1,000 in all.
# name              backend device-name    profile   threads workers type  environment
TARGETS=(
  "ort-$SLUG-small    ort   $SLUG          small-b1  1  1  lut -"
  "ort-$SLUG-b8       ort   $SLUG          cifar-b8  1  2  lut -"
  "ort-$SLUG-t2       ort   $SLUG-t2       cifar-b1  2  1  lut -"
  "torch-$SLUG-small  torch $SLUG          small-b1  1  2  lut -"
  "torch-$SLUG-avx2   torch $SLUG-avx2     cifar-b1  1  2  lut ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2"
  "torch-$SLUG-sse41  torch $SLUG-sse41    cifar-b1  1  2  lut ATEN_CPU_CAPABILITY=default,ONEDNN_MAX_CPU_ISA=SSE41"
)
for t in "${TARGETS[@]}"; do
  read -r name backend dev profile threads workers type environment <<<"$t"
  db="$WORK/$backend-$dev-$profile.db"
  caps=()
  [ "$environment" = - ] || IFS=, read -r -a caps <<<"$environment"
  env "${caps[@]}" $LPM profile --backend "$backend" --device-name "$dev" --profile "$profile" --threads "$threads" \
      --samples 1000 --seed 7 --db "$db" --workers "$workers"
  env "${caps[@]}" $LPM profile --backend "$backend" --device-name "$dev" --profile "$profile" --threads "$threads" \
      --samples 100 --cells calibration --db "$db"
  $LPM fit --db "$db" --backend "$backend" --device-name "$dev" --profile "$profile" --predictor "$type" \
      --name "$name" --zoo-dir lpm_zoo/zoo
  .venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('VACUUM')" "$db"
  gzip -9 -c "$db" > "lpm_zoo/data/measurements/$backend-$dev-$profile.db.gz"
done

# The leave-one-device-out benchmark over the shipped stores (BENCHMARKS.md, "The device zoo").
$LPM transfer --out "$WORK/transfer"
