# The two quick-start commands: `make run` (embedded default) and `make test`.
# Each creates .venv on first use; the torch pin matches the local wheels (override TORCH=...).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.lgm-bench-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: setup run report test smoke slow slurm lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install lgm-bench with its test tools

run: setup  ## the embedded default: results/ (Parquet) and reports/ (LaTeX, Markdown, figures)
	$(PY) -m benchmark run
	$(PY) -m benchmark report

report: setup
	$(PY) -m benchmark report

test: setup  ## the default test run (slow tests excluded)
	$(PY) -m pytest

smoke: setup  ## the tiny end-to-end check
	$(PY) -m benchmark run --suite smoke --results .cache/smoke/results
	$(PY) -m benchmark report --results .cache/smoke/results --out .cache/smoke/reports

slow: setup
	$(PY) -m pytest -m slow

slurm: setup  ## the tests against a one-node Slurm they start (needs slurm-wlm munge slurmdbd mariadb-server)
	$(PY) -m pytest -m slurm -rs

lint: setup
	$(VENV)/bin/ruff check .

bench: setup  ## speed benchmarks (pytest-benchmark), saved under .benchmarks/ (compare: BENCH_ARGS=--benchmark-compare)
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-autosave --scale-classes 10,100,1000 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tox .cache results/cells results/artifacts reports
