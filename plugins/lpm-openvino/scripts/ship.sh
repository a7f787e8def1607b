#!/usr/bin/env bash
# How the shipped OpenVINO data and predictor are made (run from the repository root, with the real host
# identity: never under LPM_HOST_IDENTITY): the 100 calibration cells, random cells up to 1,000 in all, a
# recheck of 200, the predictor fitted and stamped with the rows' runtime identity, the store packed.
#   usage: plugins/lpm-openvino/scripts/ship.sh WORKDIR
# Every step resumes. The shipped 2026-12-04 data was made this way on the 2-core "AMD EPYC" VM, with the
# recheck run beside the random cells (once ~300 were stored) to save wall time.
set -euo pipefail
WORK=${1:?WORKDIR}
LPM=${LPM:-.venv/bin/lpm}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK"
if [ -n "${LPM_HOST_IDENTITY:-}" ]; then echo "ship.sh: error: unset LPM_HOST_IDENTITY: real data needs the real CPU" >&2; exit 2; fi
DEV=$($PY -c "from lpm_zoo.hardware import host_slug; print(host_slug())")
DB="$WORK/openvino-$DEV-cifar-b1.db"
NAME="openvino-$DEV"
$LPM profile --backend openvino --device cpu --profile cifar-b1 --samples 100 --cells calibration --db "$DB"
$LPM profile --backend openvino --device cpu --profile cifar-b1 --samples 1000 --seed 7 --db "$DB" --workers 1
$LPM recheck --backend openvino --device cpu --profile cifar-b1 --samples 200 --db "$DB"
$LPM fit --db "$DB" --backend openvino --device-name "$DEV" --profile cifar-b1 --predictor "${TYPE:-lut}" \
    --name "$NAME" --zoo-dir lpm_zoo/zoo
$PY -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('VACUUM')" "$DB"
gzip -9 -c "$DB" > "lpm_zoo/data/measurements/openvino-$DEV-cifar-b1.db.gz"
