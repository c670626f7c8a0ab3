package proc

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses, as a JVM thread may have.
	stat := "4242 (java (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 40 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 18010 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("no error for garbage")
	}
}

func TestCPUOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := CPUOf(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP x y
stock_producer_changes_read_total 12345
process_cpu_seconds_total 1.5 1700000000
stock_producer_records_produced_total{topic="a"} 7
other 1
`
	got, err := parseMetrics(strings.NewReader(text), []string{
		"stock_producer_changes_read_total", "process_cpu_seconds_total", `stock_producer_records_produced_total{topic="a"}`})
	if err != nil {
		t.Fatal(err)
	}
	if got["stock_producer_changes_read_total"] != 12345 || got["process_cpu_seconds_total"] != 1.5 ||
		got[`stock_producer_records_produced_total{topic="a"}`] != 7 || len(got) != 3 {
		t.Errorf("got %v", got)
	}
}

func TestParseStatusPeakRSS(t *testing.T) {
	status := "Name:\tproducer\nVmPeak:\t 2000000 kB\nVmHWM:\t   524288 kB\nVmRSS:\t  100 kB\n"
	got, err := parseStatusPeakRSS(status)
	if err != nil {
		t.Fatal(err)
	}
	if got != 512 {
		t.Errorf("peak = %v MiB, want 512", got)
	}
	if _, err := parseStatusPeakRSS("Name:\tx\n"); err == nil {
		t.Error("no error without VmHWM")
	}
}
