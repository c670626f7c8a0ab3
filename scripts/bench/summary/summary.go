// Package summary turns several benchmark runs (the JSON files under
// bench-results/) into distributions: per phase and figure, the median, the
// minimum and the maximum over the runs, and how many runs there were. One
// run of a noisy machine proves little; the spread over runs is the figure.
package summary

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/stockpipe/stock/scripts/bench/report"
)

// Load reads runs from JSON files.
func Load(paths []string) ([]*report.Run, error) {
	var runs []*report.Run
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r report.Run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		runs = append(runs, &r)
	}
	return runs, nil
}

// Dist is a figure over runs.
type Dist struct {
	Median, Min, Max float64
	N                int
}

// Of summarises xs (the median of an even count is the mean of the middle two).
func Of(xs []float64) Dist {
	if len(xs) == 0 {
		return Dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Dist{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (d Dist) String() string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s-%s)", num(d.Median), num(d.Min), num(d.Max))
}

func num(v float64) string {
	switch {
	case v >= 100 || v == float64(int64(v)):
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// figure is one column of a table: its name and how to read it off a phase.
type figure[P any] struct {
	name string
	get  func(P) (float64, bool)
}

// table prints one markdown row per phase name (in first-seen order) with
// each figure's distribution over the runs that had the phase.
func table[P any](w io.Writer, phases map[string][]P, order []string, figs []figure[P]) {
	head := []string{"phase", "runs"}
	for _, f := range figs {
		head = append(head, f.name)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, name := range order {
		row := []string{name, fmt.Sprint(len(phases[name]))}
		for _, f := range figs {
			var xs []float64
			for _, p := range phases[name] {
				if v, ok := f.get(p); ok {
					xs = append(xs, v)
				}
			}
			row = append(row, Of(xs).String())
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

func inside(p *report.ProducerInside, get func(*report.ProducerInside) float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return get(p), true
}

// Pipeline prints the distributions of `bench pipeline` runs, then one line
// per run of its fixed-rate phases, so no run hides behind a median.
func Pipeline(w io.Writer, runs []*report.Run) {
	phases := map[string][]report.Phase{}
	var order []string
	for _, r := range runs {
		for _, p := range r.Phases {
			if _, seen := phases[p.Name]; !seen {
				order = append(order, p.Name)
			}
			phases[p.Name] = append(phases[p.Name], p)
		}
	}
	ms := func(name string, get func(report.Phase) float64) figure[report.Phase] {
		return figure[report.Phase]{name, func(p report.Phase) (float64, bool) { v := get(p); return v, v > 0 }}
	}
	table(w, phases, order, []figure[report.Phase]{
		{"changes/s", func(p report.Phase) (float64, bool) { return p.ChangesPerS, true }},
		ms("commit→Kafka p50 ms", func(p report.Phase) float64 { return p.KafkaAll.P50 }),
		ms("p99", func(p report.Phase) float64 { return p.KafkaAll.P99 }),
		ms("max", func(p report.Phase) float64 { return p.KafkaAll.Max }),
		ms("commit→API p50 ms", func(p report.Phase) float64 { return p.API.P50 }),
		ms("p99", func(p report.Phase) float64 { return p.API.P99 }),
		ms("p99.9", func(p report.Phase) float64 { return p.API.P999 }),
		{"Kafka txns >100 ms", func(p report.Phase) (float64, bool) {
			return inside(p.Producer, func(i *report.ProducerInside) float64 { return float64(i.KafkaTxnsOver100ms) })
		}},
		{">250 ms", func(p report.Phase) (float64, bool) {
			return inside(p.Producer, func(i *report.ProducerInside) float64 { return float64(i.KafkaTxnsOver250ms) })
		}},
		{"producer cpu-s/M", func(p report.Phase) (float64, bool) { v := p.CPUPerMillion["producer"]; return v, v > 0 }},
	})
	fmt.Fprintf(w, "\n| run | load at start | phase | commit→Kafka p99 / max ms | commit→API p99 / p99.9 ms | Kafka txns >100 / >250 ms, slowest ≤ |\n|---|---|---|---|---|---|\n")
	for _, r := range runs {
		for _, p := range r.Phases {
			if !strings.HasPrefix(p.Name, "fixed") {
				continue
			}
			slow := "-"
			if in := p.Producer; in != nil {
				slow = fmt.Sprintf("%d / %d, %s ms", in.KafkaTxnsOver100ms, in.KafkaTxnsOver250ms, num(in.SlowestKafkaTxnLeS*1000))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s / %s | %s / %s | %s |\n", r.RunID, r.LoadStart, p.Name,
				num(p.KafkaAll.P99), num(p.KafkaAll.Max), num(p.API.P99), num(p.API.P999), slow)
		}
	}
}

// Peer prints the distributions of `bench debezium` runs: ours, Debezium's
// and their ratio per run (ratios survive the machine's noise better than
// either figure alone).
func Peer(w io.Writer, runs []*report.Run) {
	phases := map[string][]report.PeerPhase{}
	var order []string
	for _, r := range runs {
		for _, p := range r.Peer {
			if _, seen := phases[p.Name]; !seen {
				order = append(order, p.Name)
			}
			phases[p.Name] = append(phases[p.Name], p)
		}
	}
	ratio := func(a, b float64) (float64, bool) { return a / b, a > 0 && b > 0 }
	perS := func(s report.Side, p report.PeerPhase) float64 {
		if s.PerS > 0 {
			return s.PerS
		}
		if p.Seconds > 0 {
			return float64(s.Records) / p.Seconds
		}
		return 0
	}
	table(w, phases, order, []figure[report.PeerPhase]{
		{"ours p99 ms", func(p report.PeerPhase) (float64, bool) { return p.Ours.Latency.P99, p.Ours.Latency.P99 > 0 }},
		{"Debezium p99 ms", func(p report.PeerPhase) (float64, bool) { return p.Debezium.Latency.P99, p.Debezium.Latency.P99 > 0 }},
		{"ours ÷ Debezium p99", func(p report.PeerPhase) (float64, bool) { return ratio(p.Ours.Latency.P99, p.Debezium.Latency.P99) }},
		{"ours records/s", func(p report.PeerPhase) (float64, bool) { v := perS(p.Ours, p); return v, v > 0 }},
		{"ours ÷ Debezium records/s", func(p report.PeerPhase) (float64, bool) { return ratio(perS(p.Ours, p), perS(p.Debezium, p)) }},
		{"ours cpu-s/M", func(p report.PeerPhase) (float64, bool) { return p.Ours.CPUPerMillion, p.Ours.CPUPerMillion > 0 }},
		{"Debezium cpu-s/M", func(p report.PeerPhase) (float64, bool) {
			return p.Debezium.CPUPerMillion, p.Debezium.CPUPerMillion > 0
		}},
		{"ours ÷ Debezium cpu/M", func(p report.PeerPhase) (float64, bool) { return ratio(p.Ours.CPUPerMillion, p.Debezium.CPUPerMillion) }},
	})
}
