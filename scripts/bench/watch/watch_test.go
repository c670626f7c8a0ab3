package watch

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCommitTimes(t *testing.T) {
	commit := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name string
		fn   func(*kgo.Record) (time.Time, bool)
		rec  *kgo.Record
		want time.Time
		ok   bool
	}{
		{"ce_time header", HeaderTime, &kgo.Record{Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte("x")}, {Key: "ce_time", Value: []byte("2026-11-25T10:00:00.123456Z")}}}, commit, true},
		{"no header", HeaderTime, &kgo.Record{}, time.Time{}, false},
		{"debezium ts_us", DebeziumTime, &kgo.Record{Value: []byte(
			`{"before":null,"after":{"a":1},"source":{"ts_ms":1795600251298,"ts_us":1795600251298508},"op":"u","ts_ms":1795600251301}`)},
			time.UnixMicro(1795600251298508), true},
		{"debezium ts_ms only", DebeziumTime, &kgo.Record{Value: []byte(`{"source":{"ts_ms":1795600251298},"op":"c"}`)},
			time.UnixMilli(1795600251298), true},
		{"debezium snapshot read skipped", DebeziumTime, &kgo.Record{Value: []byte(`{"source":{"ts_us":1},"op":"r"}`)}, time.Time{}, false},
		{"debezium tombstone skipped", DebeziumTime, &kgo.Record{}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.fn(tt.rec)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWindowAttributesByCommitTime(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	w := &Window{Name: "p", From: t0}
	w.Close(t0.Add(time.Second))
	if w.add(t0.Add(-time.Millisecond), t0) {
		t.Error("a commit before the window counted")
	}
	if !w.add(t0.Add(500*time.Millisecond), t0.Add(520*time.Millisecond)) {
		t.Error("a commit inside the window did not count")
	}
	if w.add(t0.Add(time.Second), t0.Add(2*time.Second)) {
		t.Error("a commit at the window's end counted")
	}
	n, first, last := w.Counts()
	if n != 1 || !first.Equal(t0.Add(520*time.Millisecond)) || !last.Equal(first) {
		t.Errorf("counts = %d, %v, %v", n, first, last)
	}
	if s := w.Latency.Summary(); s.Count != 1 || s.Max != 20 {
		t.Errorf("latency = %+v, want one of 20 ms", s)
	}
}
