package suite

import (
	"context"
	"sync"
	"time"

	"github.com/stockpipe/stock/scripts/bench/proc"
)

// cpuTrack samples the CPU time of processes every 100 ms, so that the CPU
// used up to a moment found afterwards (the last record of a drain) can be
// read back without counting the idle wait that found it.
type cpuTrack struct {
	mu     sync.Mutex
	series map[string][]cpuPoint
}

type cpuPoint struct {
	at  time.Time
	cpu time.Duration
}

// trackCPU samples procs until ctx ends.
func trackCPU(ctx context.Context, wg *sync.WaitGroup, procs ...*proc.Proc) *cpuTrack {
	t := &cpuTrack{series: map[string][]cpuPoint{}}
	sample := func() {
		for _, p := range procs {
			if c, err := p.CPU(); err == nil {
				t.mu.Lock()
				t.series[p.Name] = append(t.series[p.Name], cpuPoint{time.Now(), c})
				t.mu.Unlock()
			}
		}
	}
	sample()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return t
}

// at returns the CPU time of a process at the first sample at or after t
// (at most 100 ms later), or the last sample.
func (t *cpuTrack) at(name string, when time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.series[name]
	for _, p := range s {
		if !p.at.Before(when) {
			return p.cpu
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].cpu
}
