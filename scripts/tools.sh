#!/usr/bin/env bash
# Command-line tools the tests use besides the services of scripts/stack.sh, installed
# from Debian's packages when missing (the tests themselves never install anything):
#
#   kcat          an independent, non-Go Kafka client (internal/e2e/kcat_test.go)
#   python3-avro  Apache Avro for Debian's python3: decodes the Avro values kcat reads,
#                 since Debian builds kcat without Avro/Schema Registry support
#   prometheus    promtool (checks and unit tests of scripts/prometheus/rules.yml) and the
#                 server the dashboard test queries (internal/e2e/ops_test.go)
#   prometheus-redis-exporter  Redis memory and clients for that server
#   prometheus-postgres-exporter  PostgreSQL up, connections, transactions and size for it
#
#   scripts/tools.sh    install what is missing; quiet when nothing is
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.local}"
[[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"

die() { echo "tools: $*" >&2; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

pkgs=()
command -v kcat >/dev/null || pkgs+=(kcat)
installed python3-avro || pkgs+=(python3-avro)
command -v promtool >/dev/null || pkgs+=(prometheus)
command -v prometheus-redis-exporter >/dev/null || pkgs+=(prometheus-redis-exporter)
command -v prometheus-postgres-exporter >/dev/null || pkgs+=(prometheus-postgres-exporter)
((${#pkgs[@]})) || exit 0

apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
if [[ $EUID -ne 0 ]]; then
  { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } ||
    die "missing packages: ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
  apt=(sudo -n "${apt[@]}")
fi
mkdir -p "$STACK_DIR"
log="$STACK_DIR/tools-apt.log"
echo "tools: installing ${pkgs[*]} (log: $log)"
if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  die "apt-get install ${pkgs[*]} failed"
fi
