# Quick start: `make run` (app on the bundled demo) and `make test` (whole suite).
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test install install-dev demo-assets bench lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(VPY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

test: $(VENV)/.installed-dev
	$(VPY) -m pytest tests

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check xai_core ui pages app.py tests bench

bench: $(VENV)/.installed
	for f in bench/bench_*.py; do $(VPY) $$f || exit 1; done

# Rebuild the bundled demo models from scratch (deterministic, CPU; about 3.5 h on 2 cores with the ClaDec,
# robust-training and explainer stages; ONLY=cladec, ONLY=robust or ONLY=explainers rebuilds just those, 40-55 min each).
demo-assets: $(VENV)/.installed
	bash scripts/build_demo_assets.sh

clean:
	rm -rf $(VENV) .pytest_cache
