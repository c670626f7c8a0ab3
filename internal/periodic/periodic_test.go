package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	tests := []struct {
		name      string
		loop      Loop
		wantFirst time.Duration // the first call comes no sooner
		wantBound bool          // each call's context has a deadline
	}{
		{name: "at start", loop: Loop{Every: time.Hour, AtStart: true}},
		{name: "one interval in", loop: Loop{Every: 50 * time.Millisecond}, wantFirst: 50 * time.Millisecond},
		{name: "per-call timeout", loop: Loop{Every: 10 * time.Millisecond, Timeout: time.Second, AtStart: true}, wantBound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			first := make(chan time.Duration, 1)
			var calls atomic.Int32
			done := make(chan error, 1)
			go func() {
				done <- tt.loop.Run(ctx, func(cctx context.Context) {
					if _, ok := cctx.Deadline(); ok != tt.wantBound {
						t.Errorf("call has a deadline: %v, want %v", ok, tt.wantBound)
					}
					if calls.Add(1) == 1 {
						first <- time.Since(start)
					}
				})
			}()
			select {
			case d := <-first:
				if d < tt.wantFirst {
					t.Errorf("first call after %s, want at least %s", d, tt.wantFirst)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no call")
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v when its context ended, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not stop with its context")
			}
			n := calls.Load()
			time.Sleep(30 * time.Millisecond)
			if calls.Load() != n {
				t.Error("fn called after Run returned")
			}
		})
	}
}
