# `make demo`: the whole job on an embedded default (README, "The two commands").
# `make test`: what CI runs.
PYTHON ?= python3

.PHONY: demo install test

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .

demo: install
	$(PYTHON) -m intake.demo

test:
	bash .ci/run
