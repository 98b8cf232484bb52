PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test bench demo fuzz clean reliability

# requirements-lock.txt: the exact versions the tests run with, inside pyproject.toml's ranges
# (regenerate: a fresh venv, pip install -e '.[test]', pip freeze --exclude-editable).
$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements-lock.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	bash scripts/demo.sh

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c requirements-lock.txt -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/verify_quote.py
	$(BIN)/python bench/tls_handshake.py
	$(BIN)/python bench/eaa_flow.py
	test ! -f bench/pccs.py || $(BIN)/python bench/pccs.py
	$(BIN)/python bench/cli_latency.py
	$(BIN)/python bench/instructions.py

# Coverage-guided fuzzing of every reader of untrusted bytes (fuzz/targets.py); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/pip install -q -c requirements-lock.txt -e '.[test,fuzz]'
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# Slowloris, fault injection, SIGTERM under load and a long run; writes docs/reliability.md.
# RELIABILITY_ARGS e.g. --long 2000 for a shorter long run (the document says what was run).
RELIABILITY_ARGS ?=
reliability: $(STAMP)
	$(BIN)/python bench/reliability.py --doc docs/reliability.md $(RELIABILITY_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
