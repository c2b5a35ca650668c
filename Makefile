# The two commands a newcomer needs (README): `make run` (install + the default DAG) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: install run test lint ci rulegraph clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch first (a plain `torch` requirement would pull a multi-GB CUDA build).
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES) all

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

ci: lint test

rulegraph: install
	$(BIN)/snakemake all --rulegraph dot | dot -Tpng -Gdpi=110 -o docs/rulegraph.png

clean:
	rm -rf results logs .snakemake
