#!/usr/bin/env bash
# The built artifact is what is tested (issue 35): build the lpm-zoo wheel and the OpenVINO plugin's wheel,
# install them non-editable into a fresh venv (no clone on its path), and run the README's library quick start
# from a folder outside the clone. The wheel is built from the sdist, so both are checked to carry the data.
# Called by `make test` after pytest; alone: bash scripts/wheel_smoke.sh. Any failing step stops it (exit != 0).
# Packages come from pip's cache / the configured index, as for `make venv`; torch is pinned to its CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lpm-wheel-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { echo "== wheel smoke: $*"; }
fail() { echo "wheel smoke FAILED: $*" >&2; exit 1; }

step "build the sdist, and the wheel from it (what pip builds for a user: no stale build/ of the clone)"
BUILD="$ROOT/.venv/bin/python"   # `make test` made it; it has setuptools >= 77 (pyproject's build-system)
if ! { [ -x "$BUILD" ] && "$BUILD" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)"; }; then
    "$PYTHON" -m venv "$WORK/build-env" && BUILD="$WORK/build-env/bin/python"
    "$BUILD" -m pip install -q "setuptools>=77"
fi
"$BUILD" setup.py -q egg_info --egg-base "$WORK" sdist -d "$WORK/sdist" >"$WORK/sdist.log" 2>&1 \
    || { cat "$WORK/sdist.log" >&2; fail "the sdist did not build"; }
"$BUILD" -m pip wheel -q --no-deps --no-build-isolation "$WORK"/sdist/lpm_zoo-*.tar.gz plugins/lpm-openvino -w "$WORK/wheels"
"$PYTHON" - "$WORK" "$ROOT" <<'PY'
import glob, pathlib, sys, zipfile
work, root = sys.argv[1], pathlib.Path(sys.argv[2])
wheel = set(zipfile.ZipFile(glob.glob(f"{work}/wheels/lpm_zoo-*.whl")[0]).namelist())
need = [f.relative_to(root).as_posix() for d in ("lpm_zoo/data", "lpm_zoo/zoo") for f in (root / d).rglob("*")
        if f.is_file() and "__pycache__" not in f.parts]
missing = [n for n in need if n not in wheel]
if not any(n.startswith("lpm_zoo/data/measurements/") for n in need) or missing:
    sys.exit(f"wheel smoke FAILED: the wheel built from the sdist lacks {len(missing)} data file(s), e.g. {missing[:3]}")
print(f"the wheel built from the sdist carries all {len(need)} files of lpm_zoo/data and lpm_zoo/zoo")
PY

step "install them non-editable into a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install -q "$TORCH"
"$V/python" -m pip install -q "$(ls "$WORK"/wheels/lpm_zoo-*.whl)[cpu]" "$WORK"/wheels/lpm_openvino-*.whl

mkdir "$WORK/user" && cd "$WORK/user"   # a user's folder: no clone here, none on the path
export LPM_ZOO_HOME="$WORK/user/zoo" LPM_ZOO_CACHE="$WORK/user/cache" PYTHONPATH=
LPM="$V/lpm"
SITE=$("$V/python" -c "import lpm_zoo, os; print(os.path.dirname(lpm_zoo.__file__))")
case "$SITE" in "$ROOT"*) fail "lpm_zoo was imported from the clone ($SITE), not the installed wheel";; esac

step "lpm zoo list"
"$LPM" zoo list | grep -q "^ort-cpu " || fail "lpm zoo list does not list ort-cpu"
step "lpm predict --predictor ort-cpu --genotype DARTS_V2"
"$LPM" predict --predictor ort-cpu --genotype DARTS_V2 | grep -q " ms" || fail "lpm predict printed no latency"
step "lpm compare --db bundled:ort-cpu-cifar-b1 (small)"
"$LPM" compare --db bundled:ort-cpu-cifar-b1 --backend ort --profile cifar-b1 --predictors ridge,lut \
    --train-sizes 50,100 --test-size 100 --out compare >/dev/null
test -s compare/compare.json || fail "lpm compare wrote no compare.json"
step "lpm data info --db on a user's own .db (unpacked from a shipped .db.gz)"
cp "$SITE/data/measurements/ort-cpu-cifar-b1.db.gz" mine.db.gz
set +e; hint=$("$LPM" data info --db mine.db.gz 2>&1); rc=$?; set -e
[ "$rc" = 2 ] && [[ "$hint" == *"gunzip -k mine.db.gz"* ]] || fail "a .db.gz was not refused with the gunzip hint: $hint"
gunzip -k mine.db.gz
"$LPM" data info --db mine.db | grep -q "cifar-b1" || fail "lpm data info does not read the user's mine.db"
step "lpm backends (the OpenVINO plugin found through its entry point)"
"$LPM" backends | grep -q "^openvino " || fail "lpm backends does not list the openvino plugin"
step "the LAT(alpha) example of docs/latency-term.md, as written"
"$V/python" - "$ROOT/docs/latency-term.md" > example.py <<'PY'
import re, sys
print(re.search(r"^```python\n(.*?)^```$", open(sys.argv[1]).read(), re.S | re.M).group(1), end="")
PY
"$V/python" example.py | grep -Eq "^LAT\(alpha\): [0-9.]+ -> [0-9.]+ ms$" || fail "the LAT(alpha) example did not run"
step "passed in ${SECONDS} s"
