package consume

import (
	"context"
	"log/slog"

	"github.com/stockpipe/stock/internal/stockstore"
)

// EnsureGeneration activates a first generation on a Redis that never held
// one, before the live projector consumes: no generation pointer while the
// group has no committed offsets (the group then replays the topic from its
// start). Without the pointer but with committed offsets, Redis lost the
// cache (flushed, or restarted without persistence): the guard rebuilds it
// from the topic as soon as it runs, as it does when that happens later.
// Redis being down is not fatal here: the consumer retries and the guard
// checks again.
func EnsureGeneration(ctx context.Context, cfg Config, store *stockstore.Store, log *slog.Logger) error {
	ok, err := store.Initialized(ctx)
	if err != nil {
		log.Warn("cannot check the cache generation at start", "error", err)
		return nil
	}
	if ok {
		return nil
	}
	committed, err := HasCommittedOffsets(ctx, cfg.Kafka, cfg.Group, cfg.Topic)
	if err != nil {
		return err
	}
	if committed {
		return nil
	}
	gen, created, err := store.InitGeneration(ctx)
	if err != nil {
		return err
	}
	log.Info("cache generation ready", "generation", gen, "created", created)
	return nil
}
