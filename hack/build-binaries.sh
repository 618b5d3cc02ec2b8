#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules (no binary
# downloads are possible here) into a cache outside the clone, keyed by the
# pinned versions, the wrapper modules (go.mod, go.sum) and the build recipe
# below, so a second build on the same machine is skipped. Prints the bin
# directory on stdout; progress goes to stderr, one line per step with
# roughly how long it takes, and the go command's own output (module
# downloads) to a log file that is shown when a step fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
kver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# build_one NAME OUT: the recipe. Its text is part of the cache key, so a
# change here rebuilds; the progress lines around it are not.
build_one() {
  case $1 in
    etcd) (cd "$here/etcd" && go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$2" .) ;;
    kwok) (cd "$here/kwok" && go build -p "$jobs" -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$2" sigs.k8s.io/kwok/cmd/kwok) ;;
    *) (cd "$here/k8s" && go build -p "$jobs" -trimpath -ldflags "-s -w $kver" -o "$2" "k8s.io/kubernetes/cmd/$1") ;;
  esac
}

# module_of NAME, package_of NAME: where the go command finds it.
module_of() { case $1 in etcd) echo etcd ;; kwok) echo kwok ;; *) echo k8s ;; esac; }
package_of() { case $1 in etcd) echo . ;; kwok) echo sigs.k8s.io/kwok/cmd/kwok ;; *) echo "k8s.io/kubernetes/cmd/$1" ;; esac; }

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy
sum=$( { cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go \
             "$here"/kwok/go.mod "$here"/kwok/go.sum; declare -f build_one; echo "$kver"; } | sha256sum | cut -c1-10)
bin=$cache_root/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$sum/bin
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kubelet kube-proxy)

missing=()
for b in "${want[@]}"; do [[ -x $bin/$b ]] || missing+=("$b"); done
if ((${#missing[@]} == 0)); then echo "$bin"; exit 0; fi

say() { echo "build: $*" >&2; }
command -v go >/dev/null || { say "the Go toolchain is not on PATH (hack/ensure-deps.sh says which version)"; exit 1; }
mkdir -p "$bin"
log=${bin%/bin}/build.log
: >"$log"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# -p 2: this machine has two cores; more parallelism only adds memory pressure.
jobs=${BUILD_JOBS:-2}

# Seconds each step took on a 2-core machine with empty Go caches, in the
# order below (later kube binaries reuse packages the API server compiled).
estimate() {
  case $1 in
    fetch-etcd) echo 5 ;; fetch-k8s) echo 10 ;; fetch-kwok) echo 5 ;;
    etcd) echo 40 ;; kube-apiserver) echo 180 ;; kube-controller-manager) echo 45 ;;
    kube-scheduler) echo 5 ;; kubectl) echo 25 ;; kwok) echo 70 ;;
    kubelet) echo 60 ;; kube-proxy) echo 20 ;;
    *) echo 30 ;;
  esac
}
# shellcheck source=build-steps.sh
source "$here/build-steps.sh"  # human, step
fetch() { # the modules the missing binaries of one wrapper module need
  local module=$1; shift
  (cd "$here/$module" && go list -deps "$@" >/dev/null)
}

total=0 counted=" "
for b in "${missing[@]}"; do
  m=$(module_of "$b")
  [[ $counted == *" $m "* ]] || { total=$((total + $(estimate "fetch-$m"))); counted+="$m "; }
  total=$((total + $(estimate "$b")))
done
say "building ${missing[*]} from Go modules into $bin"
say "  first time on this machine only; about $(human "$total") on 2 cores (go's output: $log)"
start=$SECONDS
fetched=" "
for b in "${missing[@]}"; do
  m=$(module_of "$b")
  if [[ $fetched != *" $m "* ]]; then
    pkgs=()
    for c in "${missing[@]}"; do [[ $(module_of "$c") == "$m" ]] && pkgs+=("$(package_of "$c")"); done
    step "fetching the Go modules of hack/$m" "$(estimate "fetch-$m")" fetch "$m" "${pkgs[@]}"
    fetched+="$m "
  fi
  step "building $b" "$(estimate "$b")" build_one "$b" "$bin/$b.tmp"
  mv "$bin/$b.tmp" "$bin/$b"
done
say "built ${missing[*]} in $((SECONDS - start)) s"
echo "$bin"
