package producerbench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// A producer from before the state store has no --state-dir: the sizing
// benchmark tells the two apart by the help text and starts each with the
// flags it has.
func TestSizingStartsEachDesignWithItsFlags(t *testing.T) {
	b := fakeProducer(t, `case "$*" in *--help*) echo "--state-dir=STRING";; *) echo "$*" >"$0.args";; esac`)
	if !hasStateStore(b.c.producerBin) {
		t.Fatal("a producer whose help lists --state-dir was taken for one without a store")
	}
	before := fakeProducer(t, `case "$*" in *--help*) echo "--slot=STRING";; *) echo "$*" >"$0.args";; esac`)
	if hasStateStore(before.c.producerBin) {
		t.Fatal("a producer whose help lacks --state-dir was taken for one with a store")
	}
	before.stateless = true
	for _, c := range []struct {
		b         *bench
		wantStore bool
	}{{b, true}, {before, false}} {
		p, err := c.b.startProducer(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(t.Context(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		args, err := os.ReadFile(c.b.c.producerBin + ".args")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(args), "--state-dir"); got != c.wantStore {
			t.Errorf("started with %q: --state-dir given = %v, want %v", args, got, c.wantStore)
		}
	}
}

// A producer whose memory passes the cap is killed, and the run says so.
func TestSizingKillsAProducerOverTheCap(t *testing.T) {
	b := fakeProducer(t, `trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
	b.c.brokers = "127.0.0.1:1" // no Kafka: the record count says -1
	p, err := b.startProducer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	capped := b.watchRSS(t.Context(), p, 0.01)
	if err := p.Wait(t.Context(), 10*time.Second); err == nil {
		t.Fatal("the producer over the cap exited cleanly; want killed")
	}
	deadline := time.Now().Add(15 * time.Second)
	msg := capped()
	for msg == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		msg = capped()
	}
	if !strings.HasPrefix(msg, "killed at ") {
		t.Fatalf("cap message %q, want it to start with %q", msg, "killed at ")
	}
}
