package latency

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]float32, 100)
	for i := range hundred {
		hundred[i] = float32(i + 1) // 1..100
	}
	thousand := make([]float32, 1000)
	for i := range thousand {
		thousand[i] = float32(i + 1)
	}
	tests := []struct {
		name   string
		sorted []float32
		p      float64
		want   float64
	}{
		{"empty", nil, 99, 0},
		{"single value is every percentile", []float32{7}, 50, 7},
		{"single value max", []float32{7}, 100, 7},
		{"median of 1..100", hundred, 50, 50},
		{"p95 of 1..100", hundred, 95, 95},
		{"p99 of 1..100", hundred, 99, 99},
		{"p99.9 of 1..100 is the max", hundred, 99.9, 100},
		{"p99.9 of 1..1000", thousand, 99.9, 999},
		{"max", thousand, 100, 1000},
		{"p50 of two rounds down to the lower", []float32{1, 9}, 50, 1},
		{"tiny p is the min", hundred, 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p=%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestRecorderSummaryIsOrderIndependent(t *testing.T) {
	var r Recorder
	ds := make([]time.Duration, 0, 1000)
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	for _, d := range ds {
		r.Add(d)
	}
	r.Add(-time.Millisecond) // clock skew between sources is kept as zero
	got := r.Summary()
	want := Summary{Count: 1001, P50: 500, P95: 950, P99: 990, P999: 999, Max: 1000}
	if got != want {
		t.Errorf("Summary() = %+v, want %+v", got, want)
	}
}

func TestRecorderKeepsMicroseconds(t *testing.T) {
	var r Recorder
	r.Add(1234 * time.Microsecond)
	if got := r.Summary().Max; got != 1.234 {
		t.Errorf("max = %v ms, want 1.234", got)
	}
	if (&Recorder{}).Summary() != (Summary{}) {
		t.Error("summary of nothing is not zero")
	}
}
