#!/usr/bin/env bash
# How the ExecuTorch (XNNPACK) predictor is made, the way a user with an expensive-to-profile device would:
# `lpm adapt` from the zoo on at most 30 measured cells (the calibration set first), then checked on 60 other random
# cells measured separately (never used for fitting), against a `lut` fitted from scratch on the same 30 cells.
# Each network is exported and lowered to XNNPACK (about a minute per C=36 network on a 2-core VM), so the 90 cells
# take about 1.5 CPU-hours; the validation store is measured by WORKERS processes (default 2) beside the first.
# Every step resumes (Ctrl-C, then run it again). BENCHMARKS.md, "The ExecuTorch predictor", has what it gave.
#   usage: scripts/ship_mobile_data.sh WORKDIR [WORKERS]
# Run it with this machine's real identity (LPM_HOST_IDENTITY unset), never from pytest.
set -euo pipefail
WORK=${1:?WORKDIR}
WORKERS=${2:-2}
LPM=${LPM:-.venv/bin/lpm}
PY=${PY:-.venv/bin/python}
unset LPM_HOST_IDENTITY
mkdir -p "$WORK"
SLUG=$($PY -c "from lpm_zoo.hardware import host_slug; print(host_slug())")
# --statistic min_ratio: the pilot would lower 32 networks first; min_ratio is the ratio statistic that repeated
# best on the shipped whole-network and OpenVINO stores (BENCHMARKS.md, "The deployed network", "OpenVINO").
P=(--backend executorch --device cpu --profile cifar-b1 --threads 1 --statistic min_ratio --interleave 4)

$LPM profile "${P[@]}" --samples 30 --cells calibration --db "$WORK/calib.db" &
$LPM profile "${P[@]}" --samples 60 --seed 7 --db "$WORK/val.db" --workers "$WORKERS"
wait

# The predictor: adapt reuses the 30 measured cells and picks its map by its own leave-one-out error (the validation
# cells are not seen); openvino-epyc was the source with the lowest one (BENCHMARKS.md).
$LPM adapt --from openvino-epyc --backend executorch --profile cifar-b1 --samples 30 \
    --db "$WORK/calib.db" --name "executorch-$SLUG" --zoo-dir lpm_zoo/zoo --force --json
# The from-scratch baseline on the same cells
$LPM fit --db "$WORK/calib.db" --backend executorch --device-name "$SLUG" --profile cifar-b1 --predictor lut \
    --name "executorch-$SLUG-lut30" --zoo-dir "$WORK/zoo" --test-size 0
# The labels' own noise, then the check on the 60 cells (on the fitting store's DARTS_V2 baseline)
$LPM recheck --backend executorch --device cpu --profile cifar-b1 --samples 16 --db "$WORK/val.db"
$PY -m benchmarks.adapt_eval --db "$WORK/val.db" --backend executorch --device-name "$SLUG" --exclude-calibration 0 \
    --predictors "executorch-$SLUG,$WORK/zoo/executorch-$SLUG-lut30" --baseline-from "$WORK/calib.db"
