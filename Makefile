# xenlab: two commands on a fresh Debian 12 machine, as root.
#   make certify   set up, build the embedded Xen lab, certify it, write reports/report.html
#                  (INVENTORY=inventories/embedded.yml: the faster QEMU-only lab)
#   make test      set up, lint, run xenlab's own tests
VENV   := .venv
PYTEST := $(VENV)/bin/pytest
REPORT := reports/report.html
INVENTORY ?= inventories/embedded-xen.yml

.PHONY: setup certify test lint clean-lab bench

setup:
	@bash scripts/setup.sh

certify: setup
	$(PYTEST) suites --lab-inventory $(INVENTORY) --lab-report $(REPORT) $(ARGS)

lint:
	$(VENV)/bin/ruff check xenlab fixtures suites tests benchmarks conftest.py
	$(VENV)/bin/mypy

test: setup lint
	$(PYTEST) tests --durations=20 $(ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_lab.py
	$(VENV)/bin/python benchmarks/bench_meter.py
	$(VENV)/bin/python benchmarks/bench_xen.py

clean-lab:
	$(VENV)/bin/xenlab lab down
