# Set-up and checks. `make test` and `make demo` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint format venv clean demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q tests

# House style: `make format` rewrites, `make lint` only checks (CI runs it).
LINTED := shls_jax configs tests benchmarks docs train.py evaluate.py
lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

# Synthetic stills and videos, a few minutes of CPU training, then the validation J&F-Mean of
# the untrained (step 0) and the trained variables. Starts afresh: $(DEMO_DIR)/ is deleted.
DEMO_DIR := demo_out
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	JAX_PLATFORMS=cpu $(PY) -m shls_jax.tools.synthetic --stills $(DEMO_DIR)/stills \
	    --videos $(DEMO_DIR)/videos --num_stills 200 --still_size 96,96 --num_videos 8 \
	    --frames 8 --objects 1 --video_size 96,96
	JAX_PLATFORMS=cpu $(PY) train.py --config configs/demo.py --workdir $(DEMO_DIR)/workdir

clean:
	rm -rf $(VENV) build *.egg-info
