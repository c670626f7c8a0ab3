package cdc

import (
	"context"
	"errors"
	"time"
)

// Supervise runs the pipeline until ctx ends (nil) or a run fails with an
// error retrying cannot fix (Permanent, returned). A run that fails
// otherwise (Kafka or PostgreSQL gone, a fenced transaction) is started over
// from what Kafka committed, after a backoff so that a dead dependency is
// not hammered: RestartMin, doubled after each failure up to RestartMax.
func (p *Pipeline) Supervise(ctx context.Context) error {
	return p.supervise(ctx, p.Run)
}

// supervise is Supervise with the run to repeat passed in, so that tests
// can count the runs.
func (p *Pipeline) supervise(ctx context.Context, run func(context.Context) error) error {
	minBackoff, maxBackoff := p.cfg.RestartMin, p.cfg.RestartMax
	backoff := minBackoff
	for {
		began := time.Now()
		err := run(ctx)
		if time.Since(began) > 2*maxBackoff {
			// A run that streamed for a while ended: a new failure, not
			// the same one again.
			backoff = minBackoff
		}
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			p.log.Info("producer stopped")
			return nil
		}
		if Permanent(err) {
			return err
		}
		p.metrics.runFailed()
		p.log.Error("pipeline failed; restarting from kafka", "error", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}
