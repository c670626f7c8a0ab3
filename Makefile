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
