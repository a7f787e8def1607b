# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned, so pip takes the CPU wheel on this machine's disk
# instead of resolving a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# `cpu` installs the CPU onnxruntime; on a CUDA machine `make venv EXTRAS=test,gpu` takes onnxruntime-gpu
# instead (never both: they overwrite each other's module). `executorch` (ExecuTorch + XNNPACK, the mobile-class
# backend) installs beside torch 2.13, but lowering one network takes minutes on a 2-core machine, so its tests
# (tests/test_executorch_backend.py, ~25 min here) would take `make test` past 15 minutes: opt in with
# `make venv EXTRAS=test,cpu,executorch`; without it those tests are skipped and say why.
EXTRAS ?= test,cpu
# The suite runs as a stated CPU (LPM_HOST_IDENTITY, default xeon; tests/conftest.py); the tests marked
# `host` run once more as each other identity, so none of them holds on one CPU model only.
# Two pytest workers (pytest-xdist; most tests wait on `lpm` subprocesses); the Ray tests share one worker
# (xdist_group "ray"), so two clusters never start at once.
HOSTS  := xeon epyc graviton3
MAIN_HOST := $(or $(LPM_HOST_IDENTITY),xeon)

.PHONY: demo test smoke venv clean

venv: $(VENV)/.installed

# Plugin distributions in this repository (each its own pyproject, found through entry points alone)
PLUGINS := plugins/lpm-openvino

$(VENV)/.installed: pyproject.toml setup.py $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	for p in $(PLUGINS); do $(BIN)/python -m pip install -q -e "$$p" || exit 1; done
	touch $@

test: venv
	$(BIN)/ruff check lpm_zoo backends search tests scripts benchmarks plugins
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15
	for h in $(filter-out $(MAIN_HOST),$(HOSTS)); do \
		echo "== the host-sensitive tests as $$h (LPM_HOST_IDENTITY=$$h)"; \
		LPM_HOST_IDENTITY=$$h $(BIN)/python -m pytest -q -n 2 -m host || exit 1; \
	done

# The built wheel (and the OpenVINO plugin's), installed non-editable into a fresh venv and used from outside the
# clone: what a user installs. CI runs it after `make test` (.ci/run); ~2 min on 2 cores.
smoke: venv
	bash scripts/wheel_smoke.sh

demo: venv
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
