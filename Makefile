# Two commands on a fresh machine with Python 3.11: `make run` analyses the example photo with the shipped
# model, `make test` runs the whole suite. Each installs what it needs first: the Debian packages OpenCV
# and the tests use (when it may: root or sudo), then .venv with requirements.txt and this package (once; again
# when requirements.txt, pyproject.toml or setup.py changes). PYTHON=python3.11 make ... picks the interpreter.
# `python -m build` makes the wheel (the code, both shipped models and the Haar cascade); .ci/run tests it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test system-packages

system-packages:
	@scripts/install_system_packages.sh

$(STAMP): requirements.txt pyproject.toml setup.py | system-packages
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: system-packages $(STAMP)
	$(VENV)/bin/python src/main.py run --img examples/astronaut.jpg

test: system-packages $(STAMP)
	$(VENV)/bin/python -m pytest tests
