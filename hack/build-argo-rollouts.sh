#!/usr/bin/env bash
# Builds Argo Rollouts' controller, the peer `make bench` measures the
# operator against (bench/run.py's argo phase), from the Go module proxy into
# a cache outside the clone (next to the control plane's binaries), keyed by
# hack/argo-rollouts/ and this recipe, so a second build on the same machine
# is skipped. Also copies the module's own CRDs (manifests/crds/) next to the
# binary. Prints the cache directory (bin/rollouts-controller, crds/) on
# stdout; progress goes to stderr, one line per step, and the go command's
# own output to a log file shown when a step fails.
#
# hack/argo-rollouts/go.mod says why it repeats argo-rollouts' replace block.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/argo-rollouts
# shellcheck source=versions.sh
source "$here/versions.sh"

# build WORK OUT: the recipe. Its text is part of the cache key.
build() {
  (cd "$1" && go build -p "$jobs" -trimpath \
    -ldflags "-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=${ARGO_ROLLOUTS_VERSION#v}" \
    -o "$2" github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
}

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$( { cat "$src"/go.mod "$src"/go.sum; declare -f build; } | sha256sum | cut -c1-10)
out=$cache_root/argo-rollouts-$ARGO_ROLLOUTS_VERSION-$sum
if [[ -x $out/bin/rollouts-controller && -f $out/crds/rollout-crd.yaml ]]; then echo "$out"; exit 0; fi

say() { echo "build: $*" >&2; }
command -v go >/dev/null || { say "the Go toolchain is not on PATH (hack/ensure-deps.sh says which version)"; exit 1; }
grep -q "github.com/argoproj/argo-rollouts $ARGO_ROLLOUTS_VERSION " "$src/go.mod" \
  || { say "hack/argo-rollouts/go.mod does not require argo-rollouts $ARGO_ROLLOUTS_VERSION (hack/versions.sh)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
jobs=${BUILD_JOBS:-2}
work=$out/module
log=$out/build.log
rm -rf "$work" "$out/crds"; mkdir -p "$work" "$out/bin"
: >"$log"

# shellcheck source=build-steps.sh
source "$here/build-steps.sh"  # human, step
fetch() {
  cp "$src/go.mod" "$src/go.sum" "$work/"
  (cd "$work" && go list -deps github.com/argoproj/argo-rollouts/cmd/rollouts-controller >/dev/null)
}
copy_crds() {
  local dir
  dir=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)
  mkdir -p "$out/crds.tmp" && cp "$dir"/manifests/crds/*-crd.yaml "$out/crds.tmp/" && chmod -R u+w "$out/crds.tmp"
  mv "$out/crds.tmp" "$out/crds"
}

say "building argo-rollouts $ARGO_ROLLOUTS_VERSION (the peer of \`make bench\`) into $out"
say "  first time on this machine only; about 4 min on 2 cores (go's output: $log)"
start=$SECONDS
step "fetching argo-rollouts' Go modules (about 250)" 60 fetch
step "copying its CRDs from the module's manifests/crds" 1 copy_crds
step "building rollouts-controller" 180 build "$work" "$out/bin/rollouts-controller.tmp"
mv "$out/bin/rollouts-controller.tmp" "$out/bin/rollouts-controller"
say "built argo-rollouts in $((SECONDS - start)) s"
echo "$out"
