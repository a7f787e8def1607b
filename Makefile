# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned, so pip takes the CPU wheel on this machine's disk
# instead of resolving a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

test: venv
	$(BIN)/ruff check lpm_zoo backends search tests scripts
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
