#!/usr/bin/env bash
# Builds KEDA's operator (github.com/kedacore/keda/v2/cmd/operator), which
# scales a ModelDeployment's ScaledObject to and from zero in
# tests/integration/test_keda_operator.py, from the Go module proxy into a
# cache outside the clone (next to the control plane's binaries), keyed by
# hack/keda/ and this recipe, so a second build on the same machine is
# skipped. Prints the binary's path on stdout; progress goes to stderr, one
# line per step, and the go command's own output to a log file shown when a
# step fails.
#
# hack/keda/go.mod requires KEDA at KEDA_VERSION and repeats its replace
# block (k8s.io at v0.35.5, controller-runtime v0.23.3...), which a module
# depending on KEDA must. KEDA links every scaler's cloud SDK: the biggest
# of our Go builds (21 min measured on 2 shared cores, niced, while other
# builds and tests ran).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/keda
# shellcheck source=versions.sh
source "$here/versions.sh"

# build OUT: the recipe. Its text is part of the cache key.
build() {
  (cd "$src" && go build -p "$jobs" -trimpath \
    -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
    -o "$1" github.com/kedacore/keda/v2/cmd/operator)
}

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$( { cat "$src"/go.mod "$src"/go.sum; declare -f build; } | sha256sum | cut -c1-10)
out=$cache_root/keda-$KEDA_VERSION-$sum
if [[ -x $out/bin/keda-operator ]]; then echo "$out/bin/keda-operator"; exit 0; fi

say() { echo "build: $*" >&2; }
command -v go >/dev/null || { say "the Go toolchain is not on PATH (hack/ensure-deps.sh says which version)"; exit 1; }
grep -q "github.com/kedacore/keda/v2 $KEDA_VERSION " "$src/go.mod" \
  || { say "hack/keda/go.mod does not require KEDA $KEDA_VERSION (hack/versions.sh)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
jobs=${BUILD_JOBS:-2}
log=$out/build.log
mkdir -p "$out/bin"
: >"$log"

# shellcheck source=build-steps.sh
source "$here/build-steps.sh"  # human, step
fetch() { (cd "$src" && go list -deps github.com/kedacore/keda/v2/cmd/operator >/dev/null); }

say "building the KEDA operator $KEDA_VERSION (scale to and from zero in the tests) into $out"
say "  first time on this machine only; about 20 min on 2 cores (go's output: $log)"
start=$SECONDS
step "fetching KEDA's Go modules (about 300)" 120 fetch
step "building keda-operator" 1200 build "$out/bin/keda-operator.tmp"
mv "$out/bin/keda-operator.tmp" "$out/bin/keda-operator"
say "built the KEDA operator in $((SECONDS - start)) s"
echo "$out/bin/keda-operator"
