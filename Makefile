# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, run the embedded default (tiny model, synthetic data, no downloads)
#   make test   create .venv if needed, install the dev extras, run ruff and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Offline by construction: nothing in tests or the demo may reach a hub.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export WANDB_MODE=disabled
export DS_BUILD_OPS=0
export TOKENIZERS_PARALLELISM=false
# DeepSpeed compiles a CPU op on first use; a stable directory lets later runs reuse it.
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/streamforest/torch_extensions

.PHONY: install demo test lint bench clean-venv

$(STAMP): pyproject.toml requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build on disk here, the CUDA build on GPU hosts.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,eval,dev,serve]'
	# lmms-eval without its requirements (they would pull a CUDA torch); its runtime deps are in [eval].
	$(PY) -m pip install -q --no-deps lmms-eval==0.7.3
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m streamforest.demo

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP)
	$(PY) -m ruff check .
	# pytest exit code 5 means "no tests collected": that is a broken suite, not a pass.
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) benchmarks/memory_bench.py

clean-venv:
	rm -rf $(VENV)
