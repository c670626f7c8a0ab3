package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/stockpipe/stock/projector/dlq"
	"github.com/stockpipe/stock/projector/status"
)

// statusTimeout bounds "projector status": an operator at a terminal wants
// an answer, or to know that a service does not give one.
const statusTimeout = 30 * time.Second

// isTool says whether command is one of the operator's one-shot commands:
// they print for a terminal, log nothing and serve no metrics (the running
// projector holds the metrics port).
func isTool(command string) bool {
	switch command {
	case "status", "dlq list", "dlq replay":
		return true
	}
	return false
}

// runTool wires the operator's commands; their logic is in projector/dlq
// and projector/status.
func runTool(ctx context.Context, cfg *config, stdout io.Writer) error {
	if cfg.command == "dlq list" {
		_, err := dlq.List(ctx, cfg.dlq(cfg.DLQ.List), stdout)
		return err
	}
	store, closeRedis, err := cfg.Redis.Open(cfg.tuneRedis)
	if err != nil {
		return err
	}
	defer closeRedis()
	switch cfg.command {
	case "dlq replay":
		f := cfg.DLQ.Replay
		rc := dlq.ReplayConfig{AllowUntrusted: f.AllowUntrusted, DryRun: f.DryRun, BatchSize: cfg.BatchSize}
		// Like the live projector, never write without an active generation
		// (a lost cache is the guard's to rebuild).
		_, err := dlq.ReplayTo(ctx, cfg.dlq(f.dlqFilterFlags), rc, store.RequireGeneration(), stdout)
		return err
	case "status":
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		s := status.Read(sctx, status.Config{Kafka: cfg.Kafka, Topic: cfg.Topic, Group: cfg.Group,
			DeadLetterTopic: cfg.deadLetterTopic()}, store)
		if err := s.Write(stdout, time.Now()); err != nil {
			return err
		}
		if len(s.Errs) > 0 {
			return fmt.Errorf("%d parts of the status could not be read (printed above)", len(s.Errs))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", cfg.command)
}
