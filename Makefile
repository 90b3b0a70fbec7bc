# `make demo`: the whole job on an embedded default (README, "The two commands").
# `make test`: what CI runs.
# `make demo` and `make test` work in a venv (.venv, made with `python3 -m venv`): Debian's own Python refuses
# `pip install` outside one (externally-managed-environment). Debian needs `apt install
# python3-venv` for that once (`.ci/run` installs it when run as root).
# `make compose-test`: the compose stack built and run for real (root, Debian 12; deploy/).
PYTHON ?= python3
VENV ?= .venv

.PHONY: demo install test compose-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .

demo: install
	$(VENV)/bin/python -m intake.demo

test:
	bash .ci/run

compose-test:
	bash deploy/compose-test.sh
