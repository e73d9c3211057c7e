# ingestd developer tasks. `make test` is what CI runs (.ci/run) and what the README gives.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_TOOLS := ffmpeg ffprobe mediainfo nginx redis-server systemd-analyze

.PHONY: test lint demo bench deps clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# System tools the tests use (ffmpeg builds the media corpus, ffprobe/mediainfo are the
# references, nginx/redis/postgresql are real servers, systemd-analyze checks the units).
# Installed with apt when missing and we are root.
deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgres"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      ffmpeg mediainfo nginx-light redis-server systemd postgresql >/dev/null; \
	  else echo "missing system tools:$$missing (install ffmpeg mediainfo nginx redis-server systemd postgresql)"; exit 1; fi; \
	fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: deps lint
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/ingestd run -c examples/local.toml --once

bench: $(VENV)/.installed
	$(PY) -m bench --quick

clean:
	rm -rf out out-encord state .mypy_cache .ruff_cache
