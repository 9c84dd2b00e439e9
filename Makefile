# The two commands a new user runs: `make run` and `make test`. Both create .venv when it
# is missing and (re)install the project when pyproject.toml changed; both are idempotent.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run test install serve dvc-repro bench clean

$(INSTALLED): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(VENV)/bin/recmill run

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

# The Prefect UI (127.0.0.1:4200) and the MLflow UI (127.0.0.1:5000), until Ctrl-C.
serve: $(INSTALLED)
	BIN=$(VENV)/bin infra/serve.sh

# The weekly retrain at about 1M, 4M, 16M and 32M order lines, stage by stage (hours on 2 cores).
bench: $(INSTALLED)
	$(VENV)/bin/python -m pip install --quiet -e '.[test,bench]'
	$(VENV)/bin/python benchmarks/pipeline_scale.py
	$(VENV)/bin/python benchmarks/warehouse_reads.py

dvc-repro: $(INSTALLED)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro

clean:
	rm -rf data/canonical data/split data/models data/shared_fits data/refit data/champion reports/validation reports/drift reports/evaluation \
	  reports/output_checks reports/metrics reports/stages.json reports/runs reports/index.html \
	  reports/selection.json reports/publish.json mlflow warehouse
