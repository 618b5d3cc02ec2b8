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

.PHONY: help venv deps cluster-up cluster-down cluster-status binaries traefik keda test test-unit lint crds demo bench run

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed ## create .venv/ with the operator and its test dependencies

deps: ## apt-get install the Debian packages the tests and the demo need, when missing (hack/ensure-deps.sh)
	@hack/ensure-deps.sh

binaries: deps ## build the control plane's binaries from Go modules (cached outside the clone)
	hack/build-binaries.sh

traefik: deps ## build Traefik, the real-node tests' Gateway API data plane, from Go modules (cached; first time about 8 min)
	@hack/build-traefik.sh >/dev/null

keda: deps ## build KEDA's operator, which scales a model to and from zero in one test, from Go modules (cached; first time about 20 min)
	@hack/build-keda.sh >/dev/null

cluster-up: venv deps ## start the local control plane (idempotent); prints export KUBECONFIG=...
	@hack/cluster.sh up

cluster-down: ## stop every process cluster-up started and remove .cluster/
	@hack/cluster.sh down

cluster-status: ## exit 0 when the local control plane answers
	@hack/cluster.sh status

# Test modules run in parallel, one module per worker at a time (pytest-xdist,
# --dist loadfile): they wait on the cluster far more than they use the CPU.
# In collection order (not xdist's largest-first), so the chaos modules that
# need the cluster to themselves run early and the quick unit tests fill the
# end. PYTEST_WORKERS=0 runs them all in one process.
PYTEST_WORKERS ?= 3
test: venv deps lint ## the whole suite, unit to end-to-end, on the local control plane
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-unit: lint ## lint-imports and the pure, cluster-free tests
	$(VENV)/bin/pytest tests/unit -q

lint: venv ## lint-imports: the layering contracts in pyproject.toml
	$(VENV)/bin/lint-imports

demo: venv deps ## the whole story with real models on the real node: deploy, canary, rollback; about 2.5 min with the control plane up, 3 to 4.5 when it starts one (first run: one-time builds of about 6 + 5 min)
	$(PY) hack/demo.py

# The benchmark runs on a control plane of its own whose etcd keeps fsync
# (the test cluster's skips it), started for the run and stopped after it,
# without the real node (its figures are the operator's against the API).
BENCH_CLUSTER_DIR ?= $(CURDIR)/.cluster-bench
bench: venv deps ## the scale benchmark (BENCH_SIZES=100,300,1000) with etcd fsync on; results in bench/results/
	$(VENV)/bin/pip install -q -e '.[bench]'
	@# The peer it measures against (cached; first time about 4 min).
	@case "$${BENCH_PHASES:-all}" in all|argo) hack/build-argo-rollouts.sh >/dev/null;; esac
	@export CLUSTER_DIR='$(BENCH_CLUSTER_DIR)' KUBECONFIG='$(BENCH_CLUSTER_DIR)/kubeconfig'; \
	  ETCD_FSYNC=1 REAL_NODE=0 hack/cluster.sh up >/dev/null || exit 1; \
	  status=0; $(PY) bench/run.py || status=$$?; \
	  hack/cluster.sh down; exit $$status

# The images the real node runs (MLServer with sklearn, the storage
# initializer), built from Debian packages and pinned PyPI wheels into OCI
# archives in ~/.cache/modeldeploy/images (outside the clone; a warm cache
# returns at once). `make test` builds them too, when a real-node test needs them
# (tests/realnode/conftest.py). Needs root.
.PHONY: images
images: venv ## build the real node's images into ~/.cache/modeldeploy/images (first time: about 5 min on 2 cores)
	@hack/images/build.sh >/dev/null

run: venv ## install the CRD into $KUBECONFIG's cluster and run the operator (Ctrl-C stops it)
	$(VENV)/bin/modeldeploy run --install-crd $(RUN_ARGS)

crds: venv ## regenerate crds/ from the pydantic models
	$(PY) -m modeldeploy.crd > crds/modeldeployment.yaml

# ---- Installing into a real cluster -----------------------------------------
# image, kind-up and kind-deploy need Docker and kind, which this repository's
# CI does not have: they are kept simple and are untested here.
IMAGE_REPO ?= ghcr.io/modeldeploy/modeldeploy-operator
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# manifests/base/deployment.yaml names this same reference (a unit test checks).
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)
KIND_CLUSTER ?= modeldeploy
# kind's own kubeconfig, not the local control plane's exported above.
KIND_KUBECONFIG ?= $(HOME)/.kube/config
# What kind-deploy installs: manifests/ or one of manifests/overlays/*.
INSTALL ?= manifests

.PHONY: manifests image kind-up kind-deploy

manifests: venv ## refresh the generated files in manifests/ (CRD copy, Argo CD ConfigMap patch)
	$(PY) hack/render_manifests.py

image: ## build the operator image (IMAGE=...) with Docker (untested here)
	docker build -t $(IMAGE) .

# The Dockerfile's recipe without Docker (hack/images/build.py's `operator`),
# an OCI archive in ~/.cache/modeldeploy/images; needs root. Not in `make images`.
.PHONY: image-local
image-local: venv ## build the operator image without Docker, as an OCI archive (about 90 s; needs root)
	@hack/images/build.sh operator >/dev/null

kind-up: ## create a kind cluster (KIND_CLUSTER=modeldeploy) (untested here)
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name '$(KIND_CLUSTER)' --kubeconfig '$(KIND_KUBECONFIG)'

kind-deploy: image ## load the image into kind, install manifests/ (INSTALL=...) (untested here)
	kind load docker-image '$(IMAGE)' --name '$(KIND_CLUSTER)'
	kubectl --kubeconfig '$(KIND_KUBECONFIG)' --context 'kind-$(KIND_CLUSTER)' apply -k '$(INSTALL)'
	kubectl --kubeconfig '$(KIND_KUBECONFIG)' --context 'kind-$(KIND_CLUSTER)' -n modeldeploy-system \
	  set image deployment/modeldeploy-operator operator='$(IMAGE)'
	kubectl --kubeconfig '$(KIND_KUBECONFIG)' --context 'kind-$(KIND_CLUSTER)' -n modeldeploy-system \
	  rollout status deployment/modeldeploy-operator --timeout=120s
