# One venv for everything; every target installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local

.PHONY: run test test-local lint typecheck tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,server,memory]'
	touch $(STAMP)

# The `local` LLM provider: llama-cpp-python compiles llama.cpp (about 8 min on 2 idle cores),
# so only this target installs it. Portable build flags; no cached wheel built with others.
$(LOCAL_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" $(BIN)/pip install -q --no-cache-dir -e '.[dev,local]'
	touch $(LOCAL_STAMP)

# The whole system until Ctrl-C: Temporal, a worker, the REST API and the sample orders
# (docs/up.md). `$(BIN)/python -m examples.order_processing` is the older one-process demo.
run: $(STAMP)
	$(BIN)/belugaflow up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Real tools the tests drive: Debian's Prometheus (and its promtool), Chromium for the run page,
# and stunnel4, the TLS-terminating proxy in front of the dev server in tests/temporal/test_tls.py.
# Installed as root where apt-get exists; elsewhere their tests skip, saying so.
tools:
	@missing=""; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing="prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v stunnel4 >/dev/null || missing="$$missing stunnel4"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "note: not installed (needs root and apt-get):$$missing; their tests skip"; fi

test: lint typecheck tools
	$(BIN)/pytest

test-local: $(LOCAL_STAMP) lint typecheck tools
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
