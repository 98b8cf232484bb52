PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test bench demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/verify_quote.py
	$(BIN)/python bench/tls_handshake.py
	$(BIN)/python bench/eaa_flow.py
	test ! -f bench/pccs.py || $(BIN)/python bench/pccs.py
	$(BIN)/python bench/cli_latency.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
