# Two entry points for a fresh machine (see README.md):
#   make run   - set up, then run the main job
#   make test  - set up, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test models
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

# The shipped models in models/: mixed-quality scripted demonstrations (seeds 10000-10099),
# pre-training, evaluation on 50 held-out seeds (100000-100049), ONNX export. ~15 min a task on 2 cores.
MODEL_TASKS ?= lift can square
POLICY_STEPS ?= 4000
CRITIC_STEPS ?= 2000
models: setup
	for task in $(MODEL_TASKS); do \
	  $(VENV)/bin/collect-demos --task $$task --episodes 100 --quality mixed --seed 10000 \
	    --output data/$${task}_mixed.hdf5 && \
	  $(VENV)/bin/pretrain --task $$task --dataset data/$${task}_mixed.hdf5 --output models/$$task \
	    --policy-steps $(POLICY_STEPS) --critic-steps $(CRITIC_STEPS) --eval-episodes 50 || exit 1; \
	done
