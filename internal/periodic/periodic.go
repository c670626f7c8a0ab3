// Package periodic runs a job at a fixed interval until its context ends:
// the one shape of every housekeeping loop (trimming, heartbeats, memory
// tuning), so that each stops with its owner's context and bounds every
// call the same way. It never starts a goroutine: the caller runs Loop.Run
// in its errgroup, which then owns it.
package periodic

import (
	"context"
	"time"
)

// Loop says when a job runs.
type Loop struct {
	// Every is the interval between two calls' starts (a call longer than
	// it delays the next instead of stacking up).
	Every time.Duration
	// Timeout bounds each call (0: only the loop's context does).
	Timeout time.Duration
	// AtStart makes the first call at once rather than one interval in.
	AtStart bool
}

// Run calls fn as l says until ctx ends, then returns nil: a job reports
// and retries its own failures at the next tick, it never ends its loop
// (and with it the program's errgroup).
func (l Loop) Run(ctx context.Context, fn func(ctx context.Context)) error {
	t := time.NewTicker(l.Every)
	defer t.Stop()
	if l.AtStart {
		l.call(ctx, fn)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		l.call(ctx, fn)
	}
}

func (l Loop) call(ctx context.Context, fn func(context.Context)) {
	if ctx.Err() != nil {
		return
	}
	if l.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Timeout)
		defer cancel()
	}
	fn(ctx)
}
