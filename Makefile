# Two entry points for a fresh machine (see README.md):
#   make run   - set up, then run the main job
#   make test  - set up, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test
setup: $(VENV)/.installed

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[ros,sim,test]'
	$(PY) -m pip install --quiet --no-deps robosuite==1.5.2
	touch $@

run: setup
	$(PY) benchmarks/decision_latency.py

test: setup
	$(PY) -m pytest -q
