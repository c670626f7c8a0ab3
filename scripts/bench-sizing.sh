#!/usr/bin/env bash
# make bench-sizing: what the catalog's size does to the producer
# (docs/producer.md, docs/deployment.md). Seeds a database of its own for the
# size (sizing_<products>x<warehouses>, kept for the next run: 100M rows take
# a quarter of an hour to seed), builds the producer, and with BEFORE=<git
# revision> also the producer of that revision in a temporary worktree, then
# runs `bench sizing` with both side by side.
#   make bench-sizing PRODUCTS=100000 WAREHOUSES=100 BEFORE=e7d9403^ BENCH_ARGS="--runs=3"
# Disk: about 250 bytes of PostgreSQL per row, and while a first start runs,
# the run's change topic holds one record per row until the run drops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PRODUCTS="${PRODUCTS:-10000}"
WAREHOUSES="${WAREHOUSES:-20}"
BEFORE="${BEFORE:-}"
BASE_URL="${STOCK_PG_URL:-postgres://stock:stock@127.0.0.1:${PG_PORT:-5432}/stock?sslmode=disable}"
DB="sizing_${PRODUCTS}x${WAREHOUSES}"
URL="${BASE_URL/\/stock\?//$DB?}"
BIN="$ROOT/.local/bin"

bash scripts/stack.sh up
mkdir -p "$BIN"
go build -o "$BIN/" ./producer ./scripts/warehouse ./scripts/bench
producers=(--producer "now=$BIN/producer")
if [[ -n $BEFORE ]]; then
  rev="$(git rev-parse --short "$BEFORE")"
  tree="$(mktemp -d)"
  trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  git worktree add --detach "$tree" "$rev" >/dev/null
  (cd "$tree" && go build -o "$BIN/producer-$rev" ./producer)
  producers+=(--producer "before-$rev=$BIN/producer-$rev")
fi

if [[ "$(psql "$BASE_URL" -XAtc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" == 0 ]]; then
  psql "$BASE_URL" -Xqc "CREATE DATABASE $DB"
fi
# The seed is one statement: its last pair there means all of it is, and
# seeding 100M rows again, even as a no-op, takes many minutes.
last_product="$(printf "SKU-%06d" "$PRODUCTS")"
last_warehouse="$(printf "WH-%02d" "$WAREHOUSES")"
if [[ "$(psql "$URL" -XAtc "SELECT count(*) FROM inventory_levels WHERE product_id = '$last_product' AND warehouse_id = '$last_warehouse'" 2>/dev/null)" != 1 ]]; then
  echo "seeding $PRODUCTS products x $WAREHOUSES warehouses into $DB..."
  "$BIN/warehouse" --pg-url "$URL" seed --products "$PRODUCTS" --warehouses "$WAREHOUSES"
fi
"$BIN/bench" sizing --pg-url "$URL" "${producers[@]}" "$@"
