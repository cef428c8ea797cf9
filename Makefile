# The README's two commands: `make demo` and `make test`. Everything they need is
# installed here, idempotently: a second run only checks stamps and exits fast.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := prometheus haproxy git chromium postgresql
PYTEST_ARGS ?=
# Two workers (the machine has 2 cores); each test file runs on one worker, so a module- or
# session-scoped service (a chain, a Prefect server) is shared by the file that needs it
# (tests/conftest.py's scheduler keeps tests/e2e's files together: one package-scoped chain).
PYTEST_XDIST ?= -n 2 --dist loadfile

.PHONY: setup base system-packages controlplane kube kube-stop kube-status test lint unit demo demo-stop bench bench-judge bench-pipeline bench-concurrent bench-early clean

setup: base controlplane

# What the demo and the benchmarks need (no Kubernetes control plane).
base: system-packages $(STAMP)

# The real Kubernetes control plane the `kubernetes` tests run on: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes), kwok and etcd, built from
# the Go module proxy at the versions pinned in controlplane/go/, into a cache outside the
# work tree ($$CANARY_KUBE_CACHE, default ~/.cache/prefect-canary/kubernetes). A cold build
# takes about 8 minutes on 2 cores; later runs only check (controlplane/install.py).
controlplane: system-packages $(STAMP)
	@$(PY) -m controlplane build

# One command starts it (or finds it running) and prints its KUBECONFIG; another stops it.
kube: setup
	@$(PY) -m controlplane up
kube-stop:
	@if [ -x $(PY) ]; then $(PY) -m controlplane down; else echo "nothing to stop: no $(VENV)"; fi
kube-status:
	@$(PY) -m controlplane status

# Debian packages the tests and the demo run for real (Prometheus, HAProxy, git, Chromium
# for the tests that look at the Prefect UI, PostgreSQL for the Prefect server's database).
# Installed only when a binary is missing; no daemon is started: the package's own cluster
# service is not used, the chain starts a cluster of its own (demo/postgres.py).
system-packages:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

# The venv is rebuilt only when a requirements file (or the project's metadata) changes.
# The project itself is installed editable, without dependencies, for the `canary` CLI.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/interrogate canary blocks
	$(PY) scripts/generate_crds.py --check

# The whole suite: lint, import rules, types (mypy), docstrings (interrogate), and every test (real Prometheus,
# HAProxy, Prefect), as three jobs at once (each line of output names its job):
# - lint: the checks above;
# - not live: everything but the live suites, on two workers, one test file per worker, at a
#   lower priority (the live suites' deadlines first);
# - live: the suites that each start a whole chain or a browser (tests/e2e, tests/faults,
#   tests/ui, tests/demo/test_demo_run.py), four at once, one file per worker (tests/e2e as one
#   unit: `scope` in tests/conftest.py). They share no state: a home each, and free ports in a
#   range of their own (each pass gets a CANARY_PORT_RANGE, which tests/conftest.py cuts into
#   one band per worker), and they mostly wait on their releases' analysis windows.
# LIVE_XDIST= (empty) runs the live suites one at a time. Every job always runs; the exit
# code is the worst one; a pass that collected nothing (pytest's exit 5) is a failure.
LIVE_XDIST ?= -n 4 --dist loadfile
NOT_LIVE_NICE ?= 5
NOT_LIVE_PORTS ?= 10000-21000
LIVE_PORTS ?= 21000-32000
test: setup
	@set -o pipefail; \
	( $(MAKE) --no-print-directory lint 2>&1 | sed -u 's/^/[lint] /' ) & lint=$$!; \
	( CANARY_PORT_RANGE=$(NOT_LIVE_PORTS) nice -n $(NOT_LIVE_NICE) $(PY) -m pytest $(PYTEST_XDIST) -m "not live" \
	  --durations=15 $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[not live] /' ) & notlive=$$!; \
	( CANARY_PORT_RANGE=$(LIVE_PORTS) $(PY) -m pytest $(LIVE_XDIST) -m live -v --durations=15 $(PYTEST_ARGS) 2>&1 \
	  | sed -u 's/^/[live] /' ) & live=$$!; \
	wait $$lint; rc0=$$?; wait $$notlive; rc1=$$?; wait $$live; rc2=$$?; worst=0; \
	for job in "lint:$$rc0" "not live:$$rc1" "live:$$rc2"; do \
	  name=$${job%:*}; rc=$${job##*:}; \
	  if [ "$$name" != lint ] && [ $$rc -eq 5 ]; then echo "make test: the $$name pass collected no tests" >&2; rc=1; \
	  elif [ $$rc -ne 0 ]; then echo "make test: $$name failed (exit $$rc)" >&2; fi; \
	  if [ $$rc -gt $$worst ]; then worst=$$rc; fi; \
	done; \
	if [ $$worst -eq 0 ]; then echo "make test: lint and both passes passed"; fi; \
	exit $$worst

# Fast loop while developing: skips tests that start real services.
unit: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: base
	$(PY) bench/judge_throughput.py

# Seeded simulations: the sequential judge vs Kayenta's mode vs a fixed-horizon test.
bench-judge: base
	$(PY) bench/judge_power.py

# Starts its own chain on free ports (a few minutes); see bench/README.md.
bench-pipeline: base
	$(PY) bench/pipeline_latency.py

# Real releases on its own chain: how soon good ones are promoted, every regression caught.
bench-early: base
	$(PY) bench/early_decisions.py

# N apps released at once on one chain, SQLite then PostgreSQL (default N=20); see bench/README.md.
bench-concurrent: base
	$(PY) bench/concurrent_releases.py $(BENCH_ARGS)

# The whole chain on this machine, left running to browse; options: make demo DEMO_ARGS='--prefect-port 4201'
# DB=postgres puts the Prefect server on a PostgreSQL cluster of the demo's own (default: SQLite).
DB ?= sqlite
demo: base
	@$(PY) -m demo --db $(DB) $(DEMO_ARGS)

# Stops exactly what make demo started (verified pids), idempotent.
demo-stop:
	@if [ -x $(PY) ]; then $(PY) -m demo stop $(DEMO_ARGS); else echo "nothing to stop: no $(VENV)"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
