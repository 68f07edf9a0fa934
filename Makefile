# One entry point. Every target bootstraps first (idempotent: Debian packages when missing, the cached
# venv keyed by the dependency list, an editable install), so a fresh clone needs nothing else.
PY := .venv/bin/python
DEMO_SECONDS ?= 20

.PHONY: setup demo test test-all lint bench clean

setup:
	@bash tools/bootstrap.sh

demo: setup
	$(PY) -m streamseg run --source "synthetic://?seed=7&fps=15&width=640&height=360" \
		--config configs/cpu-mobilenet.yaml --publish tcp://127.0.0.1:5555 \
		--record demo.mp4 --duration $(DEMO_SECONDS)

test: setup lint
	$(PY) -m pytest -q

# ruff (default rules + isort) over the package (kernels included) and the tests, mypy (typed defs) over the package; pyproject.toml
lint: setup
	$(PY) -m ruff check streamseg tests
	$(PY) -m mypy streamseg

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow"

bench: setup
	$(PY) -m streamseg bench engine
	$(PY) -m streamseg bench model --config configs/cpu-mobilenet.yaml
	$(PY) -m streamseg bench kernels

clean:
	rm -rf .venv build *.egg-info demo.mp4
