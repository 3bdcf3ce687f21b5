# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create ./.venv and install the package with CPU-only torch (constraints/cpu.txt).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.lst-pipeline-installed

.PHONY: demo test lint install clean

$(STAMP): setup.cfg pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints/cpu.txt -e ".[dev]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lst-pipeline demo --workdir demo_output

test: $(STAMP)
	$(BIN)/ruff check lst_pipeline tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

# The static checks of `make test` without the tests. (No `ruff format --check`: the code
# keeps its hanging-indent layout, which the formatter would rewrite in 134 files.)
lint: $(STAMP)
	$(BIN)/ruff check lst_pipeline tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf demo_output .pytest_cache .ruff_cache
