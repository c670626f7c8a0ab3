package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records a failure instead of failing the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}

// Fatalf stops the caller, as the real one does (by a panic run recovers).
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

// run calls f with a fakeT and returns it once f returned or failed.
func run(f func(t *fakeT)) (t *fakeT) {
	t = &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != any(t) {
			panic(r)
		}
	}()
	f(t)
	return t
}

func TestEventually(t *testing.T) {
	t.Run("holds after a while", func(t *testing.T) {
		n := 0
		ft := run(func(ft *fakeT) {
			Eventually(ft, 10*time.Second, "three calls", func() bool { n++; return n == 3 })
		})
		if ft.failed != "" || n != 3 {
			t.Errorf("failed %q after %d calls, want success at the third", ft.failed, n)
		}
	})
	t.Run("times out with the last reason", func(t *testing.T) {
		n := 0
		ft := run(func(ft *fakeT) {
			Eventually(ft, 50*time.Millisecond, "the impossible", func() string { n++; return fmt.Sprintf("no, %d", n) })
		})
		if !strings.Contains(ft.failed, "the impossible") || !strings.Contains(ft.failed, fmt.Sprintf("no, %d", n)) || n < 2 {
			t.Errorf("failure %q after %d calls, want what and the last why, polled more than once", ft.failed, n)
		}
	})
}
