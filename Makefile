# `make demo`: set up and run every shipped task with every baseline on the embedded data.
# `make test`: set up and run the linter and the tests (the site's tests drive Debian's
# chromium through Playwright; installed here when root and missing, like libusb).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup check-system lint clean

setup: $(STAMP)

check-system:
	@ldconfig -p | grep -q 'libusb-1.0.so.0' || { \
	  echo "missing Debian library libusb-1.0-0 (Open3D needs it)."; \
	  echo "install it with: apt-get install -y libusb-1.0-0   (as root, or with sudo)"; \
	  exit 1; }
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "note: Debian's chromium is missing; the browser tests of the site will be"; \
	    echo "skipped. Install it with: sudo apt-get install -y chromium"; \
	  fi; }

$(STAMP): pyproject.toml | check-system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: check-system $(STAMP)
	$(BIN)/arbench demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: check-system $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) results
