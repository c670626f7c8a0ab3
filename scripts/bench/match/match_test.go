package match

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func TestSampleLatencies(t *testing.T) {
	tests := []struct {
		name    string
		changes [][2]int // lsn, kafka seen (ms after t0); commit time is t0
		redis   [][2]int // at (ms), lsn
		api     [][2]int
		want    Result
	}{
		{
			name:    "kafka then redis then api",
			changes: [][2]int{{100, 4}},
			redis:   [][2]int{{1, 90}, {3, 90}, {6, 100}, {9, 100}},
			api:     [][2]int{{2, 90}, {7, 90}, {8, 100}},
			want:    Result{Kafka: 4 * time.Millisecond, Redis: 6 * time.Millisecond, API: 8 * time.Millisecond, KafkaOK: true, RedisOK: true, APIOK: true},
		},
		{
			name:    "a later transaction's snapshot includes the write",
			changes: [][2]int{{100, 4}},
			redis:   [][2]int{{1, 90}, {12, 130}},
			api:     [][2]int{{13, 130}},
			want:    Result{Kafka: 4 * time.Millisecond, Redis: 12 * time.Millisecond, API: 13 * time.Millisecond, KafkaOK: true, RedisOK: true, APIOK: true},
		},
		{
			name:    "an older snapshot never counts",
			changes: [][2]int{{100, 4}},
			redis:   [][2]int{{1, 90}, {30, 99}},
			want:    Result{Kafka: 4 * time.Millisecond, KafkaOK: true},
		},
		{
			name:    "transfer: two records, earliest read, highest lsn",
			changes: [][2]int{{100, 5}, {100, 4}},
			redis:   [][2]int{{6, 100}},
			api:     [][2]int{{7, 100}},
			want:    Result{Kafka: 4 * time.Millisecond, Redis: 6 * time.Millisecond, API: 7 * time.Millisecond, KafkaOK: true, RedisOK: true, APIOK: true},
		},
		{
			name:  "no change record: nothing is known",
			redis: [][2]int{{6, 100}},
			want:  Result{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Sample{Key: Key{"reserve", "res-1"}, ProductID: "SKU-000001", WrittenAt: t0}
			for _, o := range tt.redis {
				s.Observe(Redis, Observation{At: ms(o[0]), LSN: uint64(o[1])})
			}
			for _, o := range tt.api {
				s.Observe(API, Observation{At: ms(o[0]), LSN: uint64(o[1])})
			}
			for _, c := range tt.changes {
				s.Change(uint64(c[0]), t0, ms(c[1]))
			}
			if got := s.Result(); got != tt.want {
				t.Errorf("Result() = %+v, want %+v", got, tt.want)
			}
			if got, want := s.Visible(Redis), tt.want.RedisOK; got != want {
				t.Errorf("Visible(Redis) = %v, want %v", got, want)
			}
		})
	}
}

func TestObserveKeepsOnlyChanges(t *testing.T) {
	s := &Sample{}
	for i := range 100 {
		s.Observe(API, Observation{At: ms(i), LSN: 7})
	}
	s.Observe(API, Observation{At: ms(100), LSN: 8})
	if n := len(s.seen[API]); n != 2 {
		t.Fatalf("kept %d observations, want 2", n)
	}
	if s.seen[API][0].At != ms(0) {
		t.Errorf("first observation at %v, want the first poll", s.seen[API][0].At)
	}
}

func TestTrackerSamplesAndRoutes(t *testing.T) {
	tr := NewTracker(3)
	var samples []*Sample
	for i, ref := range []string{"a", "b", "c", "d", "e", "f"} {
		if s, ok := tr.Offer(Key{"receive", ref}, "SKU-1", ms(i)); ok {
			samples = append(samples, s)
		}
	}
	if len(samples) != 2 || samples[0].Key.Ref != "c" || samples[1].Key.Ref != "f" {
		t.Fatalf("sampled %v, want refs c and f", samples)
	}
	if !tr.Wants("SKU-1") || tr.Wants("SKU-2") {
		t.Error("Wants: want SKU-1 only")
	}
	// The same ref with another kind is another write.
	tr.Change(Key{"release", "c"}, 50, t0, ms(9))
	if samples[0].Matched() {
		t.Error("a record of another kind matched")
	}
	tr.Change(Key{"receive", "c"}, 50, t0, ms(9))
	if !samples[0].Matched() {
		t.Error("the sample's own record did not match")
	}
	tr.Done(samples[0])
	if !tr.Wants("SKU-1") {
		t.Error("one sample of SKU-1 is still pending")
	}
	tr.Done(samples[1])
	tr.Done(samples[1]) // twice is harmless
	if tr.Wants("SKU-1") {
		t.Error("no sample is pending, yet SKU-1 is wanted")
	}
	tr.Change(Key{"receive", "f"}, 60, t0, ms(9))
	if samples[1].Matched() {
		t.Error("a done sample still matched")
	}
}
