# Pinned versions of the local control plane; the wrapper go.mod files under
# hack/ pin the same ones (a test checks they agree).
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0
# v1.6.1: Traefik 3.7 watches TLSRoute v1, first in this release's standard channel.
GATEWAY_API_VERSION=v1.6.1
ISTIO_API_VERSION=v1.28.0
# The Gateway API data plane of the real-node tests (hack/build-traefik.sh; hack/traefik/go.mod pins it too).
TRAEFIK_VERSION=v3.7.13
# KEDA's CRDs (ScaledObject, TriggerAuthentication) come from its Go module (hack/keda/go.mod pins the same;
# v2.21 needs Go 1.27, so the newest release our Go builds).
KEDA_VERSION=v2.20.2
# The peer `make bench` measures the operator against (hack/build-argo-rollouts.sh; hack/argo-rollouts/go.mod pins it too).
ARGO_ROLLOUTS_VERSION=v1.10.1
