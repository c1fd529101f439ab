# Quick start: `make run` serves the embedded default; `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bootstrap system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

bootstrap: $(STAMP)

system-deps:
	bash .ci/system-deps.sh

run: bootstrap system-deps
	$(BIN)/hotline db upgrade
	$(BIN)/hotline prompts build
	$(BIN)/hotline serve

test: bootstrap system-deps
	bash .ci/ensure-postgres.sh
	HOTLINE_TEST_PG_URL=$${HOTLINE_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
	  $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) var
