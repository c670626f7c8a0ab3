package consume

import (
	"context"
	"log/slog"
	"time"

	"github.com/stockpipe/stock/internal/periodic"
	"github.com/stockpipe/stock/internal/stockstore"
)

// The live projector's periodic work beside the consumer. Each runs until
// ctx ends and returns nil then; a failed call is logged and tried again
// at the next tick, so that a Redis in trouble never stops the projector.

// HeartbeatEvery is how often a consuming projector says it is alive; the
// heartbeat lives three times as long, so one missed beat is not an outage.
const HeartbeatEvery = 5 * time.Second

// Heartbeat tells readers (the query API's /readyz) that a projector of
// topic is running, even while the source is quiet: at once, then every
// HeartbeatEvery.
func Heartbeat(ctx context.Context, store *stockstore.Store, topic string, log *slog.Logger) error {
	loop := periodic.Loop{Every: HeartbeatEvery, Timeout: 2 * time.Second, AtStart: true}
	return loop.Run(ctx, func(cctx context.Context) {
		// A call cut short by the stop is no failure; one that timed out is.
		if err := store.Heartbeat(cctx, topic, 3*HeartbeatEvery); err != nil && ctx.Err() == nil {
			log.Warn("writing heartbeat", "error", err)
		}
	})
}

// TrimChanges keeps the change index to its retained window, keep entries,
// trimming it every interval.
func TrimChanges(ctx context.Context, store *stockstore.Store, keep int, every time.Duration, log *slog.Logger) error {
	loop := periodic.Loop{Every: every, Timeout: 5 * time.Second}
	return loop.Run(ctx, func(cctx context.Context) {
		n, err := store.TrimChanges(cctx, keep)
		if err != nil {
			log.Warn("trimming change index", "error", err)
		} else if n > 0 {
			log.Debug("trimmed change index", "removed", n)
		}
	})
}
