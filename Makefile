# README's two commands: `make demo` and `make test`. Both create .venv when it
# is missing and install the project into it (editable: the data dirs are used in
# place); nothing else is needed but Python.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first, pinned: 2.13.0 is a local CPU wheel here; an unpinned torch pulled
# in by a dependency would be a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
DEPS   := setup.cfg pyproject.toml $(wildcard setup.py)
PYTEST_ARGS ?=

.PHONY: test test-all demo bench gpu-check venv clean bedtools

# setuptools >= 70.1 builds wheels by itself (tests/test_wheel.py builds one with
# --no-build-isolation); no upper bound: Kipoi's pkg_resources comes from the start-up hook.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools>=70.1"

$(VENV)/.torch: | $(VENV)/bin/python
	$(PIP) install --quiet "$(TORCH)"
	touch $@

$(VENV)/.installed: $(DEPS) $(VENV)/.torch
	$(PIP) install --quiet -e ".[test,frameworks]"
	touch $@

venv: $(VENV)/.installed

# bedtools: the program pybedtools runs for interval_onehot's `exclude` (Debian package
# bedtools). Installed only where missing and only as root; otherwise says what to install.
bedtools:
	@command -v bedtools >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq bedtools >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bedtools >/dev/null 2>&1; } || \
	      echo "note: apt-get could not install bedtools (interval_onehot's exclude and its tests need it)"; \
	  else \
	    echo "note: bedtools is missing (interval_onehot's exclude and its tests need it): apt-get install bedtools, or conda install -c bioconda bedtools"; \
	  fi; }

test: $(VENV)/.installed bedtools
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: $(VENV)/.installed bedtools
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

demo: $(VENV)/.installed
	$(PY) -m kipoi_tanger.cli demo --out demo_output

$(VENV)/.bench: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,frameworks,bench]"
	touch $@

bench: $(VENV)/.bench
	$(PY) benchmarks/run_all.py

# On a machine with a CUDA GPU (and a CUDA build of torch in the venv): the tests
# marked gpu, then CUDA throughput and CPU parity (benchmarks/results/gpu_check.json).
gpu-check: $(VENV)/.installed
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device visible to torch')"
	$(PY) -m pytest -q -m gpu tests/test_gpu.py $(PYTEST_ARGS)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) demo_output build *.egg-info .pytest_cache
