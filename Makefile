# `make demo`: set up and run every shipped task with every baseline on the embedded data.
# `make test`: set up and run the linter and the tests (the site's tests drive Debian's
# chromium through Playwright; installed here when root and missing, like libusb).
PYTHON ?= python3
# Python caches the bytecode of what it imports (in the venv and the ignored __pycache__
# folders) during these commands even where PYTHONDONTWRITEBYTECODE is set: uv installs no
# bytecode, and without a cache every process compiles torch again (its import 6.5 s
# instead of 3.2 s; the tests 9 min instead of 4.6). Compiling everything at install instead
# (uv's --compile-bytecode) cost 40 s more on an empty cache.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup check-system check-browser lint clean

setup: $(STAMP)

# Debian packages the installed wheels need, as package:shared-library (Open3D loads
# libusb). Missing ones are installed when run as root (after one apt-get update);
# otherwise the exact command is printed.
DEBIAN_PACKAGES := libusb-1.0-0:libusb-1.0.so.0

check-system:
	@missing=""; \
	for entry in $(DEBIAN_PACKAGES); do \
	  ldconfig -p | grep -q "$${entry#*:}" || missing="$$missing $${entry%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing missing Debian packages:$$missing"; \
	    apt-get update -qq && apt-get install -y -qq$$missing; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

# The site's browser tests drive Debian's chromium (only `make test` needs it).
check-browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "note: Debian's chromium is missing; the browser tests of the site will be"; \
	    echo "skipped. Install it with: sudo apt-get install -y chromium"; \
	  fi; }

# Installed by uv (from PyPI) where it can be had: the wheels pip would choose (the best
# version on any index pip is set up with, the first such index for equal versions),
# unpacked in parallel, about 5x faster than pip; by pip otherwise.
TORCH := torch==2.14.1 torchvision==0.29.1

$(STAMP): pyproject.toml | check-system
	$(PYTHON) -m venv $(VENV)
	{ $(BIN)/pip install -q uv && $(BIN)/uv pip install -q --python $(BIN)/python \
	    --index-strategy unsafe-best-match $$($(BIN)/python tools/uv_index_flags.py) \
	    $(TORCH) -e '.[dev]'; } \
	  || { echo "uv was not usable: installing with pip"; \
	       $(BIN)/pip install -q $(TORCH) && $(BIN)/pip install -q -e '.[dev]'; }
	@touch $(STAMP)

demo: check-system $(STAMP)
	$(BIN)/arbench demo --site site

lint: $(STAMP)
	$(BIN)/ruff check .

test: check-system check-browser $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) results
