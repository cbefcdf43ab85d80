# sipscribe: `make serve` installs and starts the server; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian libraries the codecs load (Opus at 16 kHz, G.729 Annex B); PyAV is the fallback.
RUNTIME_DEBS := libopus0 libbcg729-0
# Debian packages the tests need: real speech recordings, the sipp SIP tester, and a
# speech synthesiser for sentences no recording has (card numbers for redaction).
TEST_DEBS := $(RUNTIME_DEBS) pocketsphinx-testdata sip-tester espeak-ng baresip

.PHONY: serve test install install-dev debian-deps runtime-debs lint format bench clean

serve: $(VENV)/.installed runtime-debs
	$(VENV)/bin/sipscribe serve

test: $(VENV)/.installed-dev debian-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "sipscribe needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	scripts/build-llama-wheel.sh $(PY)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install -e '.[dev,base]'
	touch $@

runtime-debs:
	@$(MAKE) --no-print-directory debian-deps TEST_DEBS="$(RUNTIME_DEBS)" || \
		echo "warning: could not install $(RUNTIME_DEBS); Opus and G.729 fall back to FFmpeg"

debian-deps:
	@missing=""; for p in $(TEST_DEBS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: $(VENV)/.installed-dev debian-deps
	$(PY) bench/asr.py
	$(PY) bench/transcribe_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
