#!/usr/bin/env bash
# make test: start the local stack when it is not up, then vet and run every
# test (unit, integration and end-to-end) with the race detector against the
# real PostgreSQL, Kafka and Redis.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/stack.sh up
bash scripts/tools.sh          # kcat and python3-avro: the independent client of the topics
bash scripts/registry.sh up    # a Confluent-compatible schema registry (Apicurio)
go vet ./...
# -p 2: packages share one PostgreSQL and one broker on a 2-core machine;
# more parallel packages only add contention and flakiness.
go test -race -count=1 -p 2 -timeout 40m ./... "$@"
