#!/usr/bin/env bash
# Builds the images the real node runs (hack/images/build.py says how) into
# ~/.cache/modeldeploy/images, outside the clone; a warm cache returns at once.
# Installs mmdebstrap (Debian) when missing. Progress on stderr; stdout is
# build.py's JSON summary (references, archives, the runtimes file).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../../.venv/bin/python}   # needs PyYAML: the project's venv has it

# Only needed when something is to be built: build.py --refs is cheap to ask first.
if ! command -v mmdebstrap >/dev/null; then
  if "$python" "$here/build.py" --check-cache "$@" 2>/dev/null; then :; else
    echo "images: installing the Debian package mmdebstrap (apt-get, about 20 s; once per machine)" >&2
    sudo=(); ((EUID == 0)) || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends mmdebstrap; } >"$log" 2>&1; then
      echo "images: apt-get failed:" >&2; tail -n 20 "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  fi
fi
exec "$python" "$here/build.py" "$@"
