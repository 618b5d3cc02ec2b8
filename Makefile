# modeldeploy-operator. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The interpreter that creates the venv; everything after runs inside it.
BOOTSTRAP_PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig
# The cluster scripts run small Python helpers with the venv's interpreter.
export PYTHON := $(CURDIR)/$(PY)

.PHONY: help venv cluster-up cluster-down cluster-status binaries test test-unit crds lint run

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed ## create .venv/ with the operator and its test dependencies

binaries: ## build the control plane's binaries from Go modules (cached outside the clone)
	hack/build-binaries.sh

cluster-up: venv ## start the local control plane (idempotent); prints export KUBECONFIG=...
	@hack/cluster.sh up

cluster-down: ## stop every process cluster-up started and remove .cluster/
	@hack/cluster.sh down

cluster-status: ## exit 0 when the local control plane answers
	@hack/cluster.sh status

test: venv ## the whole suite, unit to end-to-end, on the local control plane
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

test-unit: venv ## only the pure, cluster-free tests
	$(VENV)/bin/pytest tests/unit -q

demo: venv ## the whole story in about a minute: deploy, canary to promotion, a bad version rolled back
	$(PY) hack/demo.py

bench: venv ## the scale benchmark (BENCH_SIZES=100,300,1000); results in bench/results/
	$(VENV)/bin/pip install -q -e '.[bench]'
	@hack/cluster.sh up >/dev/null
	$(PY) bench/run.py

run: venv ## install the CRD into $$KUBECONFIG's cluster and run the operator (Ctrl-C stops it)
	$(VENV)/bin/modeldeploy run --install-crd $(RUN_ARGS)

crds: venv ## regenerate crds/ from the pydantic models
	$(PY) -m modeldeploy.crd > crds/modeldeployment.yaml
