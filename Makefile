# Two entry points for a fresh machine (see README.md):
#   make run   - set up, then run the main job (online fine-tuning over ROS 2)
#   make test  - set up, then run the whole test suite (unit and system tiers)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# calvin_env's source (not on PyPI); installed from a writable copy when it is there
CALVIN_SRC ?= ../shared/vendor/calvin_env

.PHONY: setup run test test-unit models
setup: $(VENV)/.installed

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[ros,sim,kitchen,calvin,test]'
	$(PY) -m pip install --quiet --no-deps robosuite==1.5.2
	if [ -d "$(CALVIN_SRC)" ]; then rm -rf $(VENV)/src/calvin_env && mkdir -p $(VENV)/src && \
	  cp -r "$(CALVIN_SRC)" $(VENV)/src/calvin_env && chmod -R u+w $(VENV)/src/calvin_env && \
	  $(PY) -m pip install --quiet --no-deps -e $(VENV)/src/calvin_env; fi
	touch $@

# The main job: fine-tune the shipped Lift model online over ROS 2 (bridge, policy server and
# learner as separate processes on DDS), with held-out evaluations on the way; the learning
# curve lands in runs/finetune_lift/curve.png and curve.csv. The learner needs the model's
# demonstrations, made first (a few minutes).
run: setup data/lift_mixed.hdf5
	$(VENV)/bin/otpr-launch finetune --task lift --env-steps 5000 --eval-every 2500 \
	  --output-dir runs/finetune_lift

data/lift_mixed.hdf5: | setup
	$(VENV)/bin/otpr-collect-demos --task lift --episodes 100 --quality mixed --seed 10000 --output $@

# Tests in two tiers: test/unit (torch, HDF5, tiny models; about 1 min; what a bare `pytest`
# runs) and test/system (DDS, MuJoCo, PyBullet, several processes; learning to convergence). CI
# runs both.
test: setup
	$(PY) -m pytest -q test/unit test/system

test-unit: setup
	$(PY) -m pytest -q test/unit

# The shipped models in models/, exactly as their cards say: mixed-quality scripted
# demonstrations, pre-training, evaluation on 50 held-out seeds (100000-100049), ONNX export.
# Each at config/otpr.yaml's pre-training rate (1e-3 since 2026-12-01), each critic converged.
# About 10-20 min a task on 2 cores (Square about 60, Kitchen about 60 a variant: 160 000 policy steps;
# each Kitchen card scores the pre-trained model on exploration seeds 800000.. and, configured to
# execute 4 of each chunk of 8, on the held-out seeds; kitchen_partial's policy then goes on for
# 160 000 more steps, about 40 min more); data/ is not committed.
BIN := $(VENV)/bin
models: setup
	$(BIN)/otpr-collect-demos --task lift --episodes 100 --quality mixed --seed 10000 --output data/lift_mixed.hdf5
	$(BIN)/otpr-pretrain --task lift --dataset data/lift_mixed.hdf5 --output models/lift \
	  --policy-steps 4000 --critic-steps 12000 --eval-episodes 50
	$(BIN)/otpr-collect-demos --task can --episodes 100 --quality mixed --seed 10000 --output data/can_mixed.hdf5
	$(BIN)/otpr-collect-demos --task can --episodes 150 --quality mixed --seed 20000 --output data/can_mixed_b.hdf5
	$(BIN)/otpr-pretrain --task can --dataset data/can_mixed.hdf5 data/can_mixed_b.hdf5 --output models/can \
	  --policy-steps 12000 --critic-steps 12000 --eval-episodes 50
	$(BIN)/otpr-collect-demos --task square --episodes 100 --quality mixed --seed 10000 --output data/square_mixed.hdf5
	$(BIN)/otpr-collect-demos --task square --episodes 250 --quality mixed --seed 20000 --output data/square_mixed_b.hdf5
	$(BIN)/otpr-collect-demos --task square --episodes 250 --quality mixed --seed 30000 --output data/square_mixed_c.hdf5
	$(BIN)/otpr-pretrain --task square --dataset data/square_mixed.hdf5 data/square_mixed_b.hdf5 data/square_mixed_c.hdf5 \
	  --output models/square --policy-steps 60000 --critic-steps 12000 --eval-episodes 50
	$(BIN)/otpr-collect-demos --task calvin_multi --episodes 35 --quality mixed --seed 10000 \
	  --output data/calvin_multi_mixed.hdf5
	$(BIN)/otpr-pretrain --task calvin_multi --dataset data/calvin_multi_mixed.hdf5 --output models/calvin_multi \
	  --policy-steps 3000 --critic-steps 3000 --eval-episodes 50
	for v in complete partial mixed; do \
	  $(BIN)/otpr-collect-demos --task kitchen_$$v --episodes $$([ $$v = complete ] && echo 150 || echo 200) \
	    --quality expert --seed 10000 \
	    --output data/kitchen_$$v.hdf5 && \
	  $(BIN)/otpr-pretrain --task kitchen_$$v --dataset data/kitchen_$$v.hdf5 --output runs/kitchen160k/kitchen_$$v \
	    --policy-steps 160000 --critic-steps 3000 --eval-episodes 50 --eval-seed 800000 --no-onnx \
	    --logdir runs/kitchen160k/tb_$$v && \
	  $(BIN)/otpr-configure-model --model runs/kitchen160k/kitchen_$$v \
	    --output $$([ $$v = partial ] && echo runs/kitchen160k_k4 || echo models)/kitchen_$$v \
	    --set agent.execute_steps=4 --eval-episodes 50 --eval-seed 100000 || exit 1; \
	done
	$(BIN)/otpr-pretrain --task kitchen_partial --init runs/kitchen160k_k4/kitchen_partial \
	  --dataset data/kitchen_partial.hdf5 --output models/kitchen_partial --policy-steps 160000 --critic-steps 3000 \
	  --eval-episodes 50 --eval-seed 100000 --logdir runs/kitchen320k/tb_partial
