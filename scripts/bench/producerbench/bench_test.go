package producerbench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeProducer writes a shell script standing in for the producer binary:
// the benchmark reads the producer only through its JSON log and its exit.
func fakeProducer(t *testing.T, body string) *bench {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "producer")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return &bench{c: config{producerBin: bin}, name: "bench_test"}
}

// The snapshot figures come from the producer's own log, and a producer
// that stops cleanly leaves no log behind.
func TestProducerFiguresFromItsLog(t *testing.T) {
	b := fakeProducer(t, `echo '{"time":"2026-12-04T10:00:00Z","msg":"slot created"}'
echo '{"time":"2026-12-04T10:00:02.5Z","msg":"snapshot written","rows":500}'
trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := b.startProducer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	rows, secs, err := p.snapshotFigures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 500 || secs != 2.5 {
		t.Errorf("snapshot figures = %d rows in %g s, want 500 in 2.5", rows, secs)
	}
	if _, err := p.cpuSeconds(); err != nil {
		t.Errorf("cpu of a running producer: %v", err)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(p.log); !os.IsNotExist(err) {
		t.Errorf("log %s left after a clean stop (%v)", p.log, err)
	}
}

// A producer that dies at start fails the wait for its log at once, not
// after the five-minute deadline, and its log is kept for the reader.
func TestProducerExitAtStartIsReported(t *testing.T) {
	b := fakeProducer(t, "echo 'bad flag' >&2\nexit 3\n")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := b.startProducer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p.log) })
	start := time.Now()
	if _, err := p.logLine(ctx, "slot created"); err == nil {
		t.Fatal("no error from a producer that exited")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exit noticed after %s", d)
	}
	if err := p.stop(); err == nil {
		t.Error("stop of a producer that exited 3: no error")
	}
	if _, err := os.Stat(p.log); err != nil {
		t.Errorf("log of a failed producer not kept: %v", err)
	}
}
