// Package retry runs an attempt again, with exponential backoff, until it
// succeeds or its owner says stop: the one shape of every loop that must not
// give up on a dependency in trouble (applying to Redis, writing dead
// letters, rebuilding a lost cache). It never starts a goroutine and never
// cuts an attempt short: stop is only looked at between attempts.
package retry

import "time"

// Backoff says how long to wait between attempts: Min after the first
// failure, twice as long after each next one, never more than Max.
type Backoff struct {
	Min, Max time.Duration

	// wait waits d unless stop closes first, and reports whether it waited
	// d out; nil is a real timer. Tests set it to skip the waiting.
	wait func(stop <-chan struct{}, d time.Duration) bool
}

// Until calls try until it returns true, waiting between calls as b says,
// and returns true; or returns false, without another call, when stop
// closes during a wait. try gets its attempt number (from 1) and the wait
// that follows if it returns false, for its log line.
//
// stop is a channel rather than a context so that a worker can retry under
// its own quit channel, finishing the work in hand when the program's
// context ends; a context's Done() serves as well.
func (b Backoff) Until(stop <-chan struct{}, try func(attempt int, wait time.Duration) bool) bool {
	wait := b.wait
	if wait == nil {
		wait = sleep
	}
	d := b.Min
	for attempt := 1; ; attempt++ {
		if try(attempt, d) {
			return true
		}
		if !wait(stop, d) {
			return false
		}
		d = min(2*d, b.Max)
	}
}

func sleep(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
