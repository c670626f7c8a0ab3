package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/stockpipe/stock/internal/periodic"
)

// The per-product state is a large, long-lived heap of small objects; at
// the default GOGC the collector rescans it after every few megabytes of
// short-lived record garbage (a quarter of the CPU in profiles). So the
// collector runs at GOGC 400, trading memory for CPU, under a soft memory
// limit that keeps the heap from growing to five times the live data when
// that is large: a transaction of millions of rows must not show up as
// gigabytes of resident memory.
//
// The limit starts at the configured floor and rises to twice the live heap
// when the live heap (mostly the state) outgrows half of it, so the
// collector never spins against a limit the state alone fills (100,000
// products x 100 warehouses is well over a GiB). An operator's GOGC or
// GOMEMLIMIT wins over both.
//
// tuneMemory sets the collector up and returns the loop that raises the
// limit, for the caller's errgroup, or nil when there is none to run.
func tuneMemory(log *slog.Logger, floorMiB int) func(context.Context) error {
	// The runtime reads GOGC and GOMEMLIMIT from the process environment,
	// so that is where an operator's setting is, not the config's getenv.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") != "" || floorMiB <= 0 {
		return nil
	}
	limit := int64(floorMiB) << 20
	debug.SetMemoryLimit(limit)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return nil // a runtime without the metric: the floor stays
	}
	loop := periodic.Loop{Every: 5 * time.Second}
	return func(ctx context.Context) error {
		return loop.Run(ctx, func(context.Context) {
			metrics.Read(sample)
			if want := 2 * int64(sample[0].Value.Uint64()); want > limit {
				limit = want
				debug.SetMemoryLimit(limit)
				log.Info("memory limit raised to twice the live heap", "limit_mib", limit>>20)
			}
		})
	}
}
