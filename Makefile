# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all setup example bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@if command -v npm >/dev/null 2>&1; then npm ci --silent --prefix contracts >/dev/null 2>&1 || npm install --silent --prefix contracts >/dev/null 2>&1 || echo "npm install in contracts/ failed: solc/anvil tests will be skipped"; fi
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/vinfer demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

test-all: $(STAMP)
	VINFER_SLOW=1 $(BIN)/python -m pytest -n 2 -q

example: $(STAMP)
	$(BIN)/python scripts/make_example_model.py

bench: $(STAMP)
	$(BIN)/python scripts/bench_verifier.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
