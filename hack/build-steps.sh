# Progress lines for the Go builds (sourced by build-binaries.sh and
# build-traefik.sh, which define `say` and `log`): one line before each step
# (what, roughly how long), one after; the command's output goes to the log,
# and its tail comes to the screen if it fails.

human() { local s=$1; ((s < 90)) && echo "${s} s" || echo "$(((s + 30) / 60)) min"; }

step() { # step WHAT SECONDS CMD...
  local what=$1 secs=$2 t0=$SECONDS; shift 2
  say "$what (about $(human "$secs") on 2 cores)..."
  if ! "$@" >>"$log" 2>&1; then
    say "FAILED: $what; the go command said (full log: $log):"
    grep -v '^go: downloading' "$log" | tail -n 40 >&2
    exit 1
  fi
  say "  done in $((SECONDS - t0)) s"
}
