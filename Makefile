# hydrolink: every target sets itself up on a fresh machine (a .venv with pinned tools).
PY      := .venv/bin/python
STAMP   := .venv/.installed
SHELL   := /bin/bash

.PHONY: setup test test-debs test-fast demo bench lint vectors clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py protocol/_speedups.c
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests use (brokers, database, the dashboard's browser test): installed
# by `make test` when run as root on a machine that lacks them, as .ci/run does.
TEST_DEBS := mosquitto mosquitto-clients postgresql chromium chromium-driver fonts-wqy-zenhei

test-debs:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	  else echo "make test: tests that need$$missing skip; install them with: sudo apt-get install$$missing"; fi; \
	fi

test: $(STAMP) test-debs
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow' -x

demo: $(STAMP)
	.venv/bin/hydrolink demo

bench: $(STAMP)
	@missed=""; for b in bench/*.py; do [ "$$b" = bench/common.py ] && continue; \
	  echo "== $$b"; $(PY) $$b || missed="$$missed $$b"; done; \
	  if [ -n "$$missed" ]; then echo "targets missed in:$$missed"; exit 1; fi

lint: $(STAMP)
	.venv/bin/ruff check host_tools protocol sim tests bench tools
	.venv/bin/mypy host_tools protocol sim tools
	$(PY) tools/check_firmware.py

vectors: $(STAMP)
	$(PY) -m protocol.make_vectors

clean:
	rm -rf .venv build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
