# `make demo`: the whole job on an embedded default (README, "The two commands").
# `make test`: what CI runs.
# `make compose-test`: the compose stack built and run for real (root, Debian 12; deploy/).
PYTHON ?= python3

.PHONY: demo install test compose-test

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .

demo: install
	$(PYTHON) -m intake.demo

test:
	bash .ci/run

compose-test:
	bash deploy/compose-test.sh
