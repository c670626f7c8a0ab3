package retry

import (
	"slices"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	tests := []struct {
		name      string
		min, max  time.Duration
		succeedAt int // the attempt that succeeds (0: none)
		stopAfter int // stop closes during the wait after this many waits (0: never)
		want      bool
		wantWaits []time.Duration
	}{
		{name: "first attempt", min: time.Second, max: 8 * time.Second, succeedAt: 1, want: true},
		{
			name: "doubles up to max", min: time.Second, max: 5 * time.Second, succeedAt: 6, want: true,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name: "stopped while waiting", min: time.Second, max: time.Minute, stopAfter: 3, want: false,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var waits, told []time.Duration
			b := Backoff{Min: tt.min, Max: tt.max, wait: func(_ <-chan struct{}, d time.Duration) bool {
				waits = append(waits, d)
				return len(waits) != tt.stopAfter
			}}
			var attempts []int
			got := b.Until(nil, func(attempt int, wait time.Duration) bool {
				attempts = append(attempts, attempt)
				told = append(told, wait)
				return attempt == tt.succeedAt
			})
			if got != tt.want {
				t.Errorf("Until = %v, want %v", got, tt.want)
			}
			if !slices.Equal(waits, tt.wantWaits) {
				t.Errorf("waited %v, want %v", waits, tt.wantWaits)
			}
			// try is told the wait that follows its failure, and is not
			// called again once stop closed.
			if n := len(tt.wantWaits) + 1; tt.want && len(attempts) != n || !tt.want && len(attempts) != len(tt.wantWaits) {
				t.Errorf("attempts %v after %d waits", attempts, len(waits))
			}
			for i, a := range attempts {
				if a != i+1 {
					t.Errorf("attempt numbers %v, want 1, 2, ...", attempts)
					break
				}
			}
			if !slices.Equal(told[:len(waits)], waits) {
				t.Errorf("try was told waits %v, then waited %v", told, waits)
			}
		})
	}
}

// A real wait ends when stop closes, not when the backoff would.
func TestUntilStopsDuringWait(t *testing.T) {
	stop := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { close(stop) })
	start := time.Now()
	calls := 0
	if (Backoff{Min: time.Hour, Max: time.Hour}).Until(stop, func(int, time.Duration) bool { calls++; return false }) {
		t.Fatal("Until = true without a success")
	}
	if calls != 1 {
		t.Errorf("%d calls, want 1", calls)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("returned after %s, not when stop closed", d)
	}
}
