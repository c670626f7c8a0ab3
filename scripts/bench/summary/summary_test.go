package summary

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stockpipe/stock/scripts/bench/latency"
	"github.com/stockpipe/stock/scripts/bench/report"
)

func TestOf(t *testing.T) {
	if d := Of([]float64{5, 1, 3}); d != (Dist{Median: 3, Min: 1, Max: 5, N: 3}) {
		t.Fatalf("odd: %+v", d)
	}
	if d := Of([]float64{4, 1, 3, 2}); d.Median != 2.5 || d.N != 4 {
		t.Fatalf("even: %+v", d)
	}
	if Of(nil).String() != "-" {
		t.Fatal("no runs must print -")
	}
}

func TestPipelineShowsEveryRun(t *testing.T) {
	run := func(id string, p99 float64, slow int64) *report.Run {
		return &report.Run{RunID: id, Phases: []report.Phase{{Name: "fixed-1k", ChangesPerS: 1000,
			KafkaAll: latency.Summary{P50: 10, P99: p99, Max: 2 * p99}, API: latency.Summary{P99: p99 + 5, P999: p99 + 20},
			Producer: &report.ProducerInside{KafkaTxnsOver100ms: slow, SlowestKafkaTxnLeS: 0.25}}}}
	}
	var b bytes.Buffer
	Pipeline(&b, []*report.Run{run("a", 20, 0), run("b", 40, 2), run("c", 30, 1)})
	out := b.String()
	for _, want := range []string{"| fixed-1k | 3 | 1000 (1000-1000) | 10 (10-10) | 30 (20-40) |", "| b |", "2 / 0, 250 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
