# Two commands get a newcomer from clone to results: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-demo.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (dvsa needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	# the demo's Gradio caps pillow below the pinned 13.0.0 (every 4.x-6.x release): installed without its pins
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-demo.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# the development lane: every test not marked slow (no real dvc pipeline, no torchrun)
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
