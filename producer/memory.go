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

// The per-product state lives on disk (producer/statestore); the heap holds
// what configuration bounds: the state's decoded products, batches of
// records, the Kafka client's buffers. The collector runs at the default
// GOGC (it ran at 400 while the state was a large long-lived heap, which
// let a small heap grow to five times its live data), under a soft memory
// limit: the configured floor less what the state store allocates outside
// the Go heap (Pebble's block cache and memtables), so that the process as
// a whole, not only its heap, stays under the floor.
//
// The limit rises to twice the live heap when the live heap outgrows half
// of it, so the collector never spins against a limit the live data alone
// fills. An operator's GOGC or GOMEMLIMIT wins over both.
//
// tuneMemory sets the collector up and returns the loop that raises the
// limit, for the caller's errgroup, or nil when there is none to run.
func tuneMemory(log *slog.Logger, floorMiB, offHeapMiB int) func(context.Context) error {
	// The runtime reads GOGC and GOMEMLIMIT from the process environment,
	// so that is where an operator's setting is, not the config's getenv.
	if os.Getenv("GOMEMLIMIT") != "" || floorMiB <= 0 {
		return nil
	}
	// A floor smaller than the store's own memory still leaves the heap
	// something to work in.
	limit := int64(max(floorMiB-offHeapMiB, floorMiB/4)) << 20
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
