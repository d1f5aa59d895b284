# Fresh machine:  `make demo` removes the background of a bundled photo with the shipped model;
#                 `make test` runs the whole test suite. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test test-fast lint format bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.base
	$(PIP) install -q -e ".[dev]"
	touch $@

# Inference only (numpy, OpenCV, Pillow, ONNX Runtime): no PyTorch needed.
demo: $(VENV)/.base
	$(VENV)/bin/personseg remove src/personseg/assets/astronaut.png --output results/demo
	@echo "wrote results/demo/ (original, mask, cut-out, side-by-side comparison)"

# Everything, slow tests included (CI runs exactly this).
test: $(VENV)/.dev
	@if [ -f scripts/ensure_chromium.sh ]; then sh scripts/ensure_chromium.sh; fi
	$(PY) -m pytest -m "slow or not slow" -q

test-fast: $(VENV)/.dev
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks scripts train.py inference.py
	$(VENV)/bin/ruff format --check src tests benchmarks scripts train.py inference.py

format: $(VENV)/.dev
	$(VENV)/bin/ruff format src tests benchmarks scripts train.py inference.py

clean:
	rm -rf $(VENV) results build *.egg-info src/*.egg-info .pytest_cache
