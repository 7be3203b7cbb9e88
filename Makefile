# Set-up is automatic: the first `make demo` or `make test` builds .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/twinsim run scenarios/actg175_hybrid_control.yaml --out results/demo
	@echo "Report: results/demo/report.html (also report.md, summary.csv)"

test: $(STAMP)
	$(BIN)/python -m pytest tests -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py --out docs/performance.md

clean-venv:
	rm -rf $(VENV)
