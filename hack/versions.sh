# Pinned versions of the local control plane; the wrapper go.mod files under
# hack/ pin the same ones (a test checks they agree).
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0
GATEWAY_API_VERSION=v1.4.1
ISTIO_API_VERSION=v1.28.0
