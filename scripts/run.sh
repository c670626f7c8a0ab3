#!/usr/bin/env bash
# make run: start the local stack (installing what is missing), apply the
# schema, seed demo data, then run producer, projector, query API and a
# simulated warehouse load until Ctrl-C, which stops everything this script
# started (the stack too, if it was not running before).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PRODUCTS="${PRODUCTS:-10000}"
WAREHOUSES="${WAREHOUSES:-20}"
RATE="${RATE:-200}"                     # simulated changes per second
API_ADDR="${STOCK_API_ADDR:-127.0.0.1:8080}"
export STOCK_API_ADDR="$API_ADDR"
export STOCK_PG_URL="${STOCK_PG_URL:-postgres://stock:stock@127.0.0.1:${PG_PORT:-5432}/stock?sslmode=disable}"
export STOCK_KAFKA_BROKERS="${STOCK_KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export STOCK_REDIS_ADDR="${STOCK_REDIS_ADDR:-127.0.0.1:${REDIS_PORT:-6379}}"
BIN="$ROOT/.local/bin"
LOGS="$ROOT/.local/run"
mkdir -p "$BIN" "$LOGS"

PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
export PROMETHEUS_API="$API_ADDR" # Prometheus scrapes the API where it listens

stack_was_up=false
if bash scripts/stack.sh status >/dev/null 2>&1; then stack_was_up=true; fi
prometheus_was_up=false
if bash scripts/stack.sh status 2>/dev/null | grep -q '^prometheus .* up '; then prometheus_was_up=true; fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $stack_was_up == false ]]; then
    bash scripts/stack.sh down || true # Prometheus too
  elif [[ $prometheus_was_up == false ]]; then
    bash scripts/stack.sh down prometheus || true
  fi
  echo "stopped."
}
trap cleanup INT TERM EXIT

bash scripts/stack.sh up
# Prometheus with the alert rules, scraping the programs started below.
bash scripts/stack.sh up prometheus
echo "building..."
go build -o "$BIN/" ./producer ./projector ./query-api ./scripts/warehouse
"$BIN/warehouse" migrate
echo "seeding $PRODUCTS products x $WAREHOUSES warehouses..."
"$BIN/warehouse" seed --products "$PRODUCTS" --warehouses "$WAREHOUSES"

start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}
start producer  "$BIN/producer"
start projector "$BIN/projector"
start query-api "$BIN/query-api"
start sweeper   "$BIN/warehouse" sweep   # reservation expiry, metrics on 127.0.0.1:9103 (docs/warehouse.md)

echo "waiting for the first answer..."
started=$(date +%s)
until curl -fsS "http://$API_ADDR/v1/stock/SKU-000042" >/dev/null 2>&1; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process died; see $LOGS/*.log" >&2; tail -n 20 "$LOGS"/*.log >&2; exit 1; }
  done
  if (( $(date +%s) - started > 180 )); then echo "no answer after 180 s; see $LOGS/*.log" >&2; exit 1; fi
  sleep 0.5
done
start simulator "$BIN/warehouse" simulate --no-sweep --rate "$RATE" --products "$PRODUCTS" --warehouses "$WAREHOUSES"

cat <<INFO

  Stock pipeline is running ($PRODUCTS products x $WAREHOUSES warehouses, ~$RATE changes/s simulated).

  API           http://$API_ADDR
    curl -s http://$API_ADDR/v1/stock/SKU-000042
    curl -s -XPOST http://$API_ADDR/v1/stock/bulk -d '{"product_ids":["SKU-000001","SKU-000002"]}'
  Metrics       producer http://127.0.0.1:9101/metrics   projector http://127.0.0.1:9102/metrics
                query API http://$API_ADDR/metrics   sweeper http://127.0.0.1:9103/metrics
  Logs          $LOGS/{producer,projector,query-api,sweeper,simulator}.log

  Ctrl-C stops everything this command started.
INFO
curl -s "http://$API_ADDR/v1/stock/SKU-000042"; echo

# Wait until Ctrl-C (the EXIT trap then stops everything) or until a
# process dies on its own.
interrupted=false
trap 'interrupted=true' INT TERM
wait -n "${pids[@]}" || true
if [[ $interrupted == false ]]; then echo "a process exited; see $LOGS/*.log" >&2; fi
