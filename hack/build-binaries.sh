#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules (no binary
# downloads are possible here) into a cache outside the clone, keyed by the
# pinned versions and by the wrapper modules' go.sum, so a second build on the
# same machine is skipped. Prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$(cat "$here"/k8s/go.sum "$here"/etcd/go.sum "$here"/kwok/go.sum "$here/build-binaries.sh" | sha256sum | cut -c1-10)
bin=$cache_root/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$sum/bin
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

missing=()
for b in "${want[@]}"; do [[ -x $bin/$b ]] || missing+=("$b"); done
if ((${#missing[@]} == 0)); then echo "$bin"; exit 0; fi

mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# -p 2: this machine has two cores; more parallelism only adds memory pressure.
jobs=${BUILD_JOBS:-2}
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
kver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

start=$(date +%s)
for b in "${missing[@]}"; do
  t0=$(date +%s)
  case $b in
    etcd) (cd "$here/etcd" && go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .) ;;
    kwok) (cd "$here/kwok" && go build -p "$jobs" -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$bin/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok) ;;
    *) (cd "$here/k8s" && go build -p "$jobs" -trimpath -ldflags "-s -w $kver" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b") ;;
  esac
  mv "$bin/$b.tmp" "$bin/$b"
  echo "built $b in $(( $(date +%s) - t0 ))s" >&2
done
echo "built ${missing[*]} in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
