# Two commands on a fresh machine with Python 3.11: `make run` analyses the example photo with the shipped
# model, `make test` runs the whole suite. Each installs what it needs into .venv first (once; again when
# requirements.txt changes). PYTHON=python3.11 make ... picks the interpreter.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test system-packages

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python src/main.py run --img examples/astronaut.jpg

# Debian packages the window tests and OpenCV's GUI build use; skipped (the window tests then skip) where
# apt-get is missing or neither root nor sudo is available
system-packages:
	@scripts/install_system_packages.sh

test: $(STAMP) system-packages
	$(VENV)/bin/python -m pytest tests
