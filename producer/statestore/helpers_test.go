package statestore

import (
	"testing"
)

func openTest(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, _, err := Open(Options{Dir: dir, CacheBytes: 32 << 20, MemTableBytes: 16 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
