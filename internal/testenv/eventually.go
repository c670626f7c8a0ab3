package testenv

import (
	"testing"
	"time"
)

// Cond is a condition Eventually waits for: a func() bool, or a
// func() string that returns "" once it holds and otherwise why not (the
// last reason is in the failure message).
type Cond interface {
	func() bool | func() string
}

// Eventually polls cond until it holds, and fails the test with what it was
// waiting for if timeout passes first. It polls often at first and backs
// off to a few times a second, so that a quick condition is seen quickly
// and a slow one does not hammer the service it asks.
func Eventually[C Cond](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	check := func() string {
		switch c := any(cond).(type) {
		case func() bool:
			if c() {
				return ""
			}
			return "not yet"
		case func() string:
			return c()
		}
		panic("unreachable: Cond is a bool or string func")
	}
	deadline := time.Now().Add(timeout)
	poll := 10 * time.Millisecond
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(poll)
		poll = min(2*poll, 250*time.Millisecond)
	}
}
