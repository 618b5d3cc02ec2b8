#!/usr/bin/env bash
# Builds the real node's two small images from the Go programs here, with no
# registry and no container engine: a static binary each, packed into an OCI
# archive by ociarchive/ (our own few lines) for `ctr images import`.
#   pause   the pod sandbox image (containerd's sandbox_image)
#   hello   a tiny HTTP server on :8080 for the real-node tests
# Cached outside the clone, keyed by these sources and the Go version, like
# the control plane's binaries. Prints the directory holding pause.tar and
# hello.tar on stdout; one progress line per step on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# The image references the cluster and the tests use (tags change with the recipe).
PAUSE_IMAGE=modeldeploy.local/pause:v1
HELLO_IMAGE=modeldeploy.local/hello:v1

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$( { cat "$here"/go.mod "$here"/build-images.sh; find "$here" -name '*.go' | sort | xargs cat; go env GOVERSION; } | sha256sum | cut -c1-10)
out=$cache_root/node-images-$sum
if [[ -f $out/pause.tar && -f $out/hello.tar ]]; then echo "$out"; exit 0; fi

say() { echo "build: $*" >&2; }
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
say "building the real node's images (pause, hello) into $out (about 10 s)..."
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
for p in pause hello ociarchive; do
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$tmp/$p" "./$p") || { say "FAILED: go build ./$p"; exit 1; }
done
"$tmp/ociarchive" -out "$out/pause.tar" -name "$PAUSE_IMAGE" -entrypoint /pause -user 65535:65535 "/pause=$tmp/pause"
"$tmp/ociarchive" -out "$out/hello.tar" -name "$HELLO_IMAGE" -entrypoint /hello -user 65532:65532 -port 8080 "/hello=$tmp/hello"
printf 'PAUSE_IMAGE=%s\nHELLO_IMAGE=%s\n' "$PAUSE_IMAGE" "$HELLO_IMAGE" >"$out/images.env"
say "  done in $((SECONDS - t0)) s"
echo "$out"
