#!/usr/bin/env bash
# What `make test` and `make demo` (and .ci/run, through them) need from the
# machine besides the Python venv and the Go-built binaries: Debian packages,
# installed with apt-get when missing, and the Go toolchain, checked. Cheap
# when everything is there (no apt-get at all), so every make target that
# needs them calls it.
#
# The list below is the one place these packages are named: a unit test
# (tests/unit/test_front_door.py) checks that the tests and hack/ scripts use
# no Debian-provided command missing from it, and that `make test` and
# `make demo` run this script.
set -euo pipefail

# Debian package : the command the project runs from it (empty: no command)
PACKAGES=(
  "openssl:openssl"       # hack/cluster.sh: the control plane's certificates
  "curl:curl"             # hack/cluster.sh: health checks of etcd and the API server
  "ca-certificates:"      # TLS to PyPI and the Go module proxy
  "make:make"             # the README's two commands; tests run make targets
  "prometheus:prometheus" # tests/integration/test_analysis.py: a real Prometheus for canary analysis
  # hack/real-node.sh: the real node real-0 (containerd with its CRI plugin and
  # ctr, runc, the bridge/host-local/portmap CNI plugins, iptables for
  # kube-proxy and the CNI plugins, ip for its network namespace)
  "containerd:"
  "runc:"
  "containernetworking-plugins:"
  "iptables:"
  "iproute2:ip"
)

say() { echo "deps: $*" >&2; }

missing=()
for entry in "${PACKAGES[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  if [[ -n $cmd ]]; then
    command -v "$cmd" >/dev/null 2>&1 && continue
  else
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && continue
  fi
  missing+=("$pkg")
done

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    say "missing: ${missing[*]}; install them with your system's package manager"; exit 1
  fi
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { say "missing: ${missing[*]}; run as root: apt-get install ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]} (apt-get, about 30 s; once per machine)"
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -qq && \
         "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    say "apt-get failed:"; tail -n 20 "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  say "installed ${missing[*]} in $((SECONDS - t0))s"
fi

# The Go toolchain builds the control plane (hack/build-binaries.sh). Debian's
# golang package is older than the go directive in hack/*/go.mod, so it is
# not installed from here: say what is needed instead.
if ! command -v go >/dev/null; then
  want=$(sed -n 's/^go //p' "$(dirname "$0")/k8s/go.mod")
  say "the Go toolchain (go $want or newer) is not on PATH: it builds the control plane's binaries"; exit 1
fi
