// Package latency provides the benchmark's latency recorder: it keeps every
// observation (a few million float32 at most) and reports exact
// nearest-rank percentiles, never averages. It must never know where the
// observations come from.
package latency

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder collects durations. It is safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	obs []float32 // milliseconds; float32 keeps 1 µs resolution up to ~16 s
}

// Add records one duration. Negative durations (clock granularity between
// two sources) are kept as zero.
func (r *Recorder) Add(d time.Duration) {
	ms := float32(max(d, 0).Seconds() * 1e3)
	r.mu.Lock()
	r.obs = append(r.obs, ms)
	r.mu.Unlock()
}

// Len returns how many durations were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.obs)
}

// Summary is what a table row shows of a latency distribution, in
// milliseconds. A Summary of no observations has Count 0 and zero values.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary computes the percentiles of what has been recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	sorted := slices.Clone(r.obs)
	r.mu.Unlock()
	slices.Sort(sorted)
	return Summary{
		Count: len(sorted),
		P50:   Percentile(sorted, 50),
		P95:   Percentile(sorted, 95),
		P99:   Percentile(sorted, 99),
		P999:  Percentile(sorted, 99.9),
		Max:   Percentile(sorted, 100),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// ascending sorted values: the smallest value such that at least p% of the
// values are at or below it. It returns 0 for no values. Nearest rank, not
// interpolation: every figure reported is a latency that was observed.
func Percentile(sorted []float32, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps binary fractions (99.9% of 1000 is 999.0000000000001
	// in float64) from pushing the rank one up.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = min(max(rank, 1), n)
	return round3(float64(sorted[rank-1]))
}

// round3 keeps microseconds: float32 noise beyond them would only clutter
// the JSON.
func round3(ms float64) float64 { return math.Round(ms*1e3) / 1e3 }
