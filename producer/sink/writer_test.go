package sink

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// With Kafka gone, Produce blocks once the buffer is full (that bounds the
// memory of a huge source transaction); Stop must release it, or a
// shutdown waits for Kafka for ever.
func TestStopReleasesProduceBlockedOnAFullBuffer(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "levels", "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := NewWriter(ctx, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "stop-test", "checkpoints", "slot")
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	defer w.cl.Close()
	c.Close()
	if err := w.Begin(); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100_001 { // one more than the buffer holds
			w.Produce(&kgo.Record{Topic: "levels", Value: []byte("x")})
		}
	}()
	select {
	case <-done:
		t.Fatal("100,001 records went into a buffer of 100,000 with Kafka gone")
	case <-time.After(2 * time.Second):
	}
	w.Stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Produce still blocked 30 s after Stop")
	}
	w.Produce(&kgo.Record{Topic: "levels", Value: []byte("after")}) // returns at once
	select {
	case err := <-w.errs:
		if err == nil {
			t.Fatal("a nil produce error")
		}
	default:
		t.Fatal("no produce error recorded after Stop: the transaction could commit without its records")
	}
}
