#!/usr/bin/env bash
# make test: start the local stack when it is not up, then vet and run every
# test (unit, integration and end-to-end) with the race detector against the
# real PostgreSQL, Kafka and Redis.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Tests find the services through these; they follow the stack's ports.
export STOCK_PG_URL="${STOCK_PG_URL:-postgres://stock:stock@127.0.0.1:${PG_PORT:-5432}/stock?sslmode=disable}"
export STOCK_KAFKA_BROKERS="${STOCK_KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export STOCK_REDIS_ADDR="${STOCK_REDIS_ADDR:-127.0.0.1:${REDIS_PORT:-6379}}"
export STOCK_SCHEMA_REGISTRY_URL="${STOCK_SCHEMA_REGISTRY_URL:-http://127.0.0.1:${REGISTRY_PORT:-8081}/apis/ccompat/v7}"

bash scripts/stack.sh up
STACK_SECURE=1 bash scripts/stack.sh up  # the secure profile beside it (docs/security.md)
secure_env="$(STACK_SECURE=1 bash scripts/stack.sh env)"
eval "$secure_env"                       # STOCK_SECURE_*: where internal/securetest finds it
STACK_REPLICATED=1 bash scripts/stack.sh up  # a 3-node Kafka cluster (the replication tests)
eval "$(STACK_REPLICATED=1 bash scripts/stack.sh env)"  # STOCK_REPLICATED_KAFKA_BROKERS
bash scripts/tools.sh          # kcat, python3-avro, promtool and Prometheus
bash scripts/schemathesis.sh install  # for the OpenAPI test of query-api/api (TestSchemathesis)
bash scripts/examples.sh       # the docs/examples consumers' toolchains (internal/e2e/examples_test.go)
bash scripts/registry.sh up    # a Confluent-compatible schema registry (Apicurio)
# The alert rules: valid, and each alert's unit tests (scripts/prometheus/rules_test.yml).
promtool check rules scripts/prometheus/rules.yml
(cd scripts/prometheus && promtool test rules rules_test.yml)
bash scripts/asyncapi.sh       # docs/asyncapi.yaml: valid to the AsyncAPI parser, Avro payloads included
go vet ./...
bash scripts/lint.sh          # staticcheck and gosec, pinned, installed into .local/bin
# -p 2: packages share one PostgreSQL and one broker on a 2-core machine;
# more parallel packages only add contention and flakiness.
go test -race -count=1 -p 2 -timeout 40m ./... "$@"
