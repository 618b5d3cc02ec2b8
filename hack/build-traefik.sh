#!/usr/bin/env bash
# Builds Traefik, the Gateway API data plane the real-node tests route real
# requests through, from the Go module proxy into a cache outside the clone
# (next to the control plane's binaries), keyed by hack/traefik/ and this
# recipe, so a second build on the same machine is skipped. Prints the
# binary's path on stdout; progress goes to stderr, one line per step, and
# the go command's own output to a log file shown when a step fails.
#
# hack/traefik/go.mod says why it differs from traefik's own go.mod. The one
# step that is not plain `go build`: lego, traefik's ACME library, is copied
# next to the module with 13 DNS providers cut out (hack/traefik/trim_lego.py),
# since the proxy refuses their SDK modules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/traefik
# shellcheck source=versions.sh
source "$here/versions.sh"

# build WORK OUT: the recipe. Its text is part of the cache key.
build() {
  (cd "$1" && go build -p "$jobs" -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$2" github.com/traefik/traefik/v3/cmd/traefik)
}

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$( { cat "$src"/go.mod "$src"/go.sum "$src"/ext/* "$src"/lego-providers-removed.txt "$src"/trim_lego.py
         declare -f build; } | sha256sum | cut -c1-10)
out=$cache_root/traefik-$TRAEFIK_VERSION-$sum
if [[ -x $out/bin/traefik ]]; then echo "$out/bin/traefik"; exit 0; fi

say() { echo "build: $*" >&2; }
command -v go >/dev/null || { say "the Go toolchain is not on PATH (hack/ensure-deps.sh says which version)"; exit 1; }
grep -q "github.com/traefik/traefik/v3 $TRAEFIK_VERSION " "$src/go.mod" \
  || { say "hack/traefik/go.mod does not require traefik $TRAEFIK_VERSION (hack/versions.sh)"; exit 1; }
lego_version=$(sed -n 's,^\s*github.com/go-acme/lego/v5 \(v[^ ]*\).*,\1,p' "$src/go.mod")
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
jobs=${BUILD_JOBS:-2}
work=$out/module
log=$out/build.log
rm -rf "$work"; mkdir -p "$work" "$out/bin"
: >"$log"

# shellcheck source=build-steps.sh
source "$here/build-steps.sh"  # human, step
copy_module() {
  cp "$src/go.mod" "$src/go.sum" "$work/" && cp -r "$src/ext" "$work/ext"
  # Outside any module, so the download does not read the copy's go.mod
  # (whose ./lego replace does not exist yet).
  local lego
  lego=$(cd "$out" && go mod download -json "github.com/go-acme/lego/v5@$lego_version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$lego" "$work/lego" && chmod -R u+w "$work/lego"
  python3 "$src/trim_lego.py" "$work/lego" "$src/lego-providers-removed.txt"
}
fetch() { (cd "$work" && go list -deps github.com/traefik/traefik/v3/cmd/traefik >/dev/null); }

say "building traefik $TRAEFIK_VERSION (the Gateway API data plane of the real-node tests) into $out"
say "  first time on this machine only; about 8 min on 2 cores (go's output: $log)"
start=$SECONDS
step "copying the wrapper module and lego $lego_version without 13 DNS providers" 5 copy_module
step "fetching traefik's Go modules (about 350)" 150 fetch
step "building traefik" 420 build "$work" "$out/bin/traefik.tmp"
mv "$out/bin/traefik.tmp" "$out/bin/traefik"
say "built traefik in $((SECONDS - start)) s"
echo "$out/bin/traefik"
