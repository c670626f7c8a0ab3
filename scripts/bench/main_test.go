package main

import (
	"strings"
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

// Every subcommand answers --help with its flags and no error, whether kong
// or Go's flag package (the single-program benchmarks) parses them.
func TestHelpExitsCleanly(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "projector"},
		{[]string{"pipeline", "--help"}, "--max-rates"},
		{[]string{"debezium", "--help"}, "--debezium-libs"},
		{[]string{"summarize", "--help"}, "<files>"},
		{[]string{"producer", "--help"}, "-backlog-rows"},
		{[]string{"projector", "-h"}, "-skip-rebuild"},
		{[]string{"api", "--help"}, "-latency-load"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut testWriter
			if err := run(t.Context(), tc.args, &out, &errOut); err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			if help := string(out) + string(errOut); !strings.Contains(help, tc.want) {
				t.Errorf("%v printed no %q:\n%s", tc.args, tc.want, help)
			}
		})
	}
}

// A single-program benchmark refuses an unknown flag rather than running
// with its defaults.
func TestUnknownFlagFails(t *testing.T) {
	for _, cmd := range []string{"producer", "projector", "api"} {
		var out, errOut testWriter
		if err := run(t.Context(), []string{cmd, "--no-such-flag"}, &out, &errOut); err == nil {
			t.Errorf("%s --no-such-flag: no error", cmd)
		}
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
