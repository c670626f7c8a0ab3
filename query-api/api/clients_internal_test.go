package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

// Quiet clients leave the table after the expiry, making room for new
// ones; until then newcomers share the overflow bucket, which is counted.
func TestLimiterStoreExpires(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	overflow := prometheus.NewCounter(prometheus.CounterOpts{Name: "overflow"})
	s := newLimiterStore(rate.Limit(1000), 1000, 2, time.Minute, overflow)
	s.now = func() time.Time { return now }
	for _, id := range []string{"a", "b", "c"} {
		if ok, _ := s.Allow(id); !ok {
			t.Fatalf("%s refused", id)
		}
	}
	if len(s.clients) != 2 {
		t.Fatalf("table of %d, want its bound 2", len(s.clients))
	}
	if n := testutil.ToFloat64(overflow); n != 1 {
		t.Fatalf("overflow counted %v, want 1", n)
	}
	now = now.Add(time.Minute)
	if _, _ = s.Allow("c"); len(s.clients) != 1 || s.clients["c"] == nil {
		t.Fatalf("after the expiry the table holds %v, want c alone", s.clients)
	}
}
