package main

import (
	"testing"
	"time"

	"github.com/stockpipe/stock/scripts/bench/suite"
)

func TestParseSteps(t *testing.T) {
	got, err := parseSteps([]string{"fixed-1k=1000/1/30s", "max=40000/20/1m"})
	if err != nil {
		t.Fatal(err)
	}
	want := []suite.Step{
		{Name: "fixed-1k", Rate: 1000, TxMaxCalls: 1, Duration: 30 * time.Second},
		{Name: "max", Rate: 40000, TxMaxCalls: 20, Duration: time.Minute},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseSteps = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"nameonly", "x=1/2", "x=a/1/1s", "x=1/1/forever"} {
		if _, err := parseSteps([]string{bad}); err == nil {
			t.Errorf("parseSteps(%q): no error", bad)
		}
	}
}

func TestHelpExitsCleanly(t *testing.T) {
	var out, errOut testWriter
	if err := run(t.Context(), []string{"pipeline", "--help"}, &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if len(out) == 0 {
		t.Error("no help printed")
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
