# The two commands: `make run` (the whole system with demo data and load) and
# `make test` (everything CI runs, on the real local stack).
SHELL := /bin/bash
GO    ?= go
BIN   := .local/bin

.PHONY: run test build stack-up stack-down stack-status vet

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

build:
	$(GO) build -o $(BIN)/ ./producer ./projector ./query-api ./scripts/warehouse

vet:
	$(GO) vet ./...

stack-up:
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

stack-status:
	@bash scripts/stack.sh status

# Every benchmark is a subcommand of one program, scripts/bench
# (go run ./scripts/bench --help), sharing its process and report packages.

# Projector benchmark against the local stack (real Kafka and Redis):
# snapshots applied/s with p50/p99 batch latency, and full rebuild time.
# BENCH_ARGS=--large adds the 100,000 x 100 rebuild.
.PHONY: bench-projector
bench-projector:
	$(GO) run ./scripts/bench projector $(BENCH_ARGS)

# Load the query API on this machine (10,000 products x 20 warehouses in the
# local Redis under a unique prefix, ~10 s per case) beside the same reads
# straight against Redis. Figures: docs/api.md.
.PHONY: bench-api
bench-api:
	$(GO) run ./scripts/bench api $(BENCH_API_ARGS)

# End-to-end benchmark (issue 6, docs/benchmarks.md): fixed-rate, find-the-max,
# catch-up and rebuild phases; one table plus a JSON file under bench-results/.
# BENCH_ARGS passes flags (go run ./scripts/bench pipeline --help).
.PHONY: bench bench-debezium
bench:
	@bash scripts/bench.sh pipeline $(BENCH_ARGS)

# Our producer and Debezium's PostgreSQL connector (Kafka Connect standalone,
# jars from scripts/debezium/pom.xml) side by side on the same workload.
bench-debezium:
	@bash scripts/bench.sh debezium $(BENCH_ARGS)

# The same on a 3-node Kafka cluster with replication factor 3 (the replicated
# profile of scripts/stack.sh; docs/benchmarks.md, one broker beside three).
.PHONY: bench-replicated
bench-replicated:
	@BENCH_REPLICATED=1 bash scripts/bench.sh pipeline $(BENCH_ARGS)

# The same benchmark RUNS times in a row, then median, min and max over the runs
# (scripts/bench-series.sh). For the fixed-rate phase alone, 60 s per run:
#   make bench-series RUNS=10 BENCH_ARGS="--fixed=fixed-1k=1000/1/60s --max-rates=0 --backlog=0 --no-rebuild"
.PHONY: bench-series bench-debezium-series
bench-series:
	@RUNS=$${RUNS:-10} bash scripts/bench-series.sh pipeline $(BENCH_ARGS)

bench-debezium-series:
	@RUNS=$${RUNS:-5} bash scripts/bench-series.sh debezium $(BENCH_ARGS)

# Producer alone: snapshot rows/s, streaming rows/s, one large transaction,
# commit-to-Kafka latency at 1,000/s and at the writers' maximum.
# What the catalog's size does to the producer (scripts/bench-sizing.sh):
#   make bench-sizing PRODUCTS=100000 WAREHOUSES=100 BEFORE=e7d9403^ BENCH_ARGS="--runs=3"
.PHONY: bench-sizing
bench-sizing:
	@PRODUCTS=$(PRODUCTS) WAREHOUSES=$(WAREHOUSES) BEFORE=$(BEFORE) bash scripts/bench-sizing.sh $(BENCH_ARGS)

.PHONY: bench-producer
bench-producer: build
	@bash scripts/stack.sh up
	@$(BIN)/warehouse seed --products 10000 --warehouses 20
	$(GO) run ./scripts/bench producer --producer $(BIN)/producer $(BENCH_ARGS)
