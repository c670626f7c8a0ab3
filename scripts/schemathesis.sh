#!/usr/bin/env bash
# schemathesis (PyPI), pinned, in a project-local virtualenv: the OpenAPI test of the
# query API (query-api/api/schemathesis_test.go) runs it against the real API on the
# real Redis and fails on any mismatch between /openapi.json and the server.
#
#   scripts/schemathesis.sh install   create .local/venv and install the pinned version
#                                     when missing (quiet when it is there); make test
#                                     calls it
#   scripts/schemathesis.sh run       install, then run that Go test alone
#
# The version is pinned so that a new release's new checks cannot fail a build that
# did not change; raise it on purpose and fix what it finds.
set -euo pipefail

VERSION=4.32.5
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.local}"
[[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"
VENV="$STACK_DIR/venv"
BIN="$VENV/bin/schemathesis"

die() { echo "schemathesis: $*" >&2; exit 1; }

install() {
  if [[ -x "$BIN" ]] && [[ "$("$BIN" --version 2>/dev/null)" == *" $VERSION" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 not found"
  mkdir -p "$STACK_DIR"
  local log="$STACK_DIR/schemathesis-pip.log"
  echo "schemathesis: installing $VERSION into $VENV (log: $log)"
  if ! python3 -m venv "$VENV" >"$log" 2>&1; then
    # Debian's python3 needs its venv module from a package.
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
      env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
        --no-install-recommends python3-venv >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get install python3-venv failed"; }
      python3 -m venv "$VENV" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "python3 -m venv failed"; }
    else
      tail -n 20 "$log" >&2
      die "python3 -m venv failed (install python3-venv)"
    fi
  fi
  if ! "$VENV/bin/pip" install --disable-pip-version-check -q "schemathesis==$VERSION" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pip install schemathesis==$VERSION failed"
  fi
  "$BIN" --version >/dev/null || die "installed, but $BIN does not run"
}

case "${1:-install}" in
  install) install ;;
  run)
    install
    cd "$ROOT"
    export STOCK_REDIS_ADDR="${STOCK_REDIS_ADDR:-127.0.0.1:${REDIS_PORT:-6379}}"
    STOCK_SCHEMATHESIS="$BIN" go test -count=1 -run '^TestSchemathesis$' -v ./query-api/api
    ;;
  *) die "usage: $0 [install|run]" ;;
esac
