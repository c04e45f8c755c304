# dmo_ros on a machine with only Python and pip. Two commands matter:
#   make demo   set up the environment (first time: a few minutes) and run the main job
#   make test   set up the environment and run lint and the test suite (what CI runs)
# Both re-run fast: each setup step below re-runs only when its inputs changed.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMPS := $(VENV)/.stamps
LOG := $(VENV)/setup.log
MSGS_BUILD := $(VENV)/build/dmo_msgs
# Keep DDS traffic on this machine (shared memory) for the demo; tests pick their own.
DEMO_ENV := FASTDDS_BUILTIN_TRANSPORTS=SHM ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

DEMO_BAGS := bags/demo
DEMO_DATASETS := datasets/demo
DEMO_RUNS := runs/demo
# Samples (5 Hz teleop ticks) of play the main job records on the simulated clock (dmo-collect-fast: ~1 min per
# 10 000 here; the same bags a live recording writes). The world model needs ~10k to follow actions
# (docs/gates.md "Where the cpu presets stand").
DEMO_SAMPLES ?= 10000
# The Push-T task the demo's policy learns (push_region: the highest the laptop budget learns; push_t: the paper's)
# and its imagined samples (40 k: the ladder's push_region rows, 76 % over three seeds on rung 2 with the demo's
# --batch-size 8 --policy-ema 0.98; docs/ladder.md "Averaging the policy's weights").
TASK ?= push_region
POLICY_SAMPLES ?= 40000
# The world model's steps (the cpu preset's 6000 take 30-38 min on 2 idle cores; the demo trains 2000 on one core
# beside the reward and local models, about as long as they take) and the local model's (empty: the preset's 1000;
# with 500 DMO fell to 14/50 on push_region). docs/ladder.md "The main job's budget" has the measurements.
DEMO_WORLD_MODEL_STEPS ?= 2000
DEMO_LOCAL_MODEL_STEPS ?=

.PHONY: setup demo smoke test lint clean
.DELETE_ON_ERROR:

setup: $(STAMPS)/dmo_ros

# The main job, stage after stage on a fresh recording, each printing its progress and its wall time
# (scripts/demo_pipeline.sh): record play data on the Push-T stand-in faster than real time, print what the recording holds, convert it
# into a dataset, train the world model and write its fidelity report, save the goal picture, train and evaluate
# the reward model, pretrain the local model, train a DMO-SAPO policy for TASK in the world model, and evaluate it
# on the stand-in next to the random, zero-action and expert ceilings, then through the deploy graph. Run folders
# go to runs/demo/<session>; a re-run training stage resumes.
demo: setup
	$(DEMO_ENV) DEMO_WORLD_MODEL_STEPS=$(DEMO_WORLD_MODEL_STEPS) DEMO_LOCAL_MODEL_STEPS=$(DEMO_LOCAL_MODEL_STEPS) \
	  scripts/demo_pipeline.sh $(BIN) $(DEMO_SAMPLES) $(DEMO_BAGS) $(DEMO_DATASETS) $(DEMO_RUNS) $(TASK) $(POLICY_SAMPLES)

# Two-node check of the ROS 2 setup.
smoke: setup
	$(DEMO_ENV) $(BIN)/dmo-launch smoke duration:=5

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

# 1. The virtual environment with pinned packages, and the ROS wheels' CMake path fix.
$(STAMPS)/packages: requirements.txt scripts/fix_ros_wheel_cmake.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; the ROS 2 wheels need CPython 3.11 (set PYTHON=...)"; exit 1; }
	@echo "setup: installing packages into $(VENV) (log: $(LOG))"
	@mkdir -p $(VENV)
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --upgrade -r requirements.txt >$(LOG) 2>&1 || { tail -n 30 $(LOG); exit 1; }
	@$(BIN)/python scripts/fix_ros_wheel_cmake.py
	@mkdir -p $(STAMPS) && touch $@

# 2. dmo_msgs built with CMake and installed into the venv prefix (importable with no sourcing).
$(STAMPS)/dmo_msgs: $(STAMPS)/packages $(wildcard dmo_msgs/msg/*.msg) dmo_msgs/CMakeLists.txt dmo_msgs/package.xml
	@echo "setup: building dmo_msgs"
	@export AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) CMAKE_PREFIX_PATH=$(CURDIR)/$(VENV); \
	  { cmake -S dmo_msgs -B $(MSGS_BUILD) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) \
	      -DPython3_EXECUTABLE=$(BIN)/python -DBUILD_TESTING=OFF \
	    && cmake --build $(MSGS_BUILD) -j2 && cmake --install $(MSGS_BUILD); } >>$(LOG) 2>&1 \
	  || { tail -n 30 $(LOG); exit 1; }
	@touch $@

# 3. dmo_ros itself, in development mode (edits take effect without reinstalling).
$(STAMPS)/dmo_ros: $(STAMPS)/dmo_msgs setup.py setup.cfg
	@echo "setup: installing dmo_ros (editable)"
	@$(BIN)/python -m pip install --no-deps --no-build-isolation -e . >>$(LOG) 2>&1 || { tail -n 30 $(LOG); exit 1; }
	@touch $@

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache
