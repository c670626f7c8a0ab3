#!/usr/bin/env bash
# make bench / make bench-debezium: the end-to-end benchmark on the
# local stack (docs/benchmarks.md).
#   scripts/bench.sh pipeline [bench flags]   producer + projector + query API
#   scripts/bench.sh debezium [bench flags]   our producer vs Debezium, side by side
# Starts the stack if it is not running (and stops it again at the end), builds,
# seeds, then runs `bench pipeline` or `bench debezium` (scripts/bench, the one
# benchmark command; make bench-producer/-projector/-api run its other
# subcommands), which starts the programs under test with names of its own
# (slot, publication, topic prefix, group, Redis prefix, ports) so a running
# `make run` is left alone, and removes them when it is done.
# Results: one table on stdout and a JSON file under bench-results/.
# BENCH_REPLICATED=1 runs it on the replicated profile's 3-node Kafka cluster
# (STACK_REPLICATED=1 scripts/stack.sh; topics at replication factor 3 and
# min.insync.replicas 2, as the producer chooses on a cluster), with PostgreSQL
# and Redis from the local stack: make bench-replicated.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

mode="${1:-pipeline}"
shift || true
case "$mode" in
  pipeline|debezium) ;;
  *) echo "usage: scripts/bench.sh pipeline|debezium [flags]" >&2; exit 2 ;;
esac

PRODUCTS="${PRODUCTS:-10000}"
WAREHOUSES="${WAREHOUSES:-20}"
export STOCK_PG_URL="${STOCK_PG_URL:-postgres://stock:stock@127.0.0.1:${PG_PORT:-5432}/stock?sslmode=disable}"
export STOCK_KAFKA_BROKERS="${STOCK_KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export STOCK_REDIS_ADDR="${STOCK_REDIS_ADDR:-127.0.0.1:${REDIS_PORT:-6379}}"
BIN="$ROOT/.local/bin"
DBZ_LIBS="$ROOT/.local/debezium/libs"

stack_was_up=false
if bash scripts/stack.sh status >/dev/null 2>&1; then stack_was_up=true; fi
cleanup() {
  trap - INT TERM EXIT
  if [[ $stack_was_up == false ]]; then bash scripts/stack.sh down || true; fi
}
trap cleanup INT TERM EXIT

bash scripts/stack.sh up
if [[ -n "${BENCH_REPLICATED:-}" && "$BENCH_REPLICATED" != 0 ]]; then
  STACK_REPLICATED=1 bash scripts/stack.sh up
  eval "$(STACK_REPLICATED=1 bash scripts/stack.sh env)"
  export STOCK_KAFKA_BROKERS="$STOCK_REPLICATED_KAFKA_BROKERS"
  echo "on the 3-node cluster $STOCK_KAFKA_BROKERS"
fi
echo "building..."
mkdir -p "$BIN"
go build -o "$BIN/" ./producer ./projector ./query-api ./scripts/warehouse ./scripts/bench
echo "seeding $PRODUCTS products x $WAREHOUSES warehouses (idempotent)..."
"$BIN/warehouse" seed --products "$PRODUCTS" --warehouses "$WAREHOUSES"

if [[ $mode == debezium ]]; then
  # Fetched again whenever the POM changes.
  stamp="$DBZ_LIBS/.pom.sha256"
  want="$(sha256sum scripts/debezium/pom.xml | cut -d' ' -f1)"
  if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    echo "fetching Kafka Connect and the Debezium PostgreSQL connector with Maven..."
    rm -rf "$DBZ_LIBS"
    mvn -B -q -f scripts/debezium/pom.xml dependency:copy-dependencies -DoutputDirectory="$DBZ_LIBS"
    echo "$want" >"$stamp"
  fi
fi

# The bench program stops what it starts on exit and on Ctrl-C.
"$BIN/bench" "$mode" --products "$PRODUCTS" --warehouses "$WAREHOUSES" "$@"
