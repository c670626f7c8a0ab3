package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/testenv"
)

// Two projector processes share the partitions under a steady write load;
// one is killed with SIGKILL and a third joins mid-stream. A reader checks
// all along that no product's position ever goes backwards; at the end Redis
// holds the last snapshot (or tombstone) of every product in the topic.
func TestProjectorRebalanceUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three projector processes under load")
	}
	topic := pjTopic(t, 6)
	group := testenv.Name(t, "pj_group")
	st := pjStore(t)
	ctx := context.Background()

	const products = 400
	ids := make([]string, products)
	for i := range ids {
		ids[i] = fmt.Sprintf("SKU-%05d", i)
	}

	// The reader: positions must never decrease, deletions included.
	var backwards, reads atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		seen := map[string]position.Position{}
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			for _, id := range ids[:100] { // a sample, read one by one as a client would
				p, _, ok, err := st.StoredPosition(ctx, id)
				if err != nil || !ok {
					continue
				}
				if prev, had := seen[id]; had && prev.After(p) {
					backwards.Add(1)
					t.Errorf("%s went back from %s to %s", id, prev, p)
				}
				seen[id] = p
				reads.Add(1)
			}
		}
	}()

	a := start(t, "projector", projectorArgs(topic, group, st.Prefix())...)
	start(t, "projector", projectorArgs(topic, group, st.Prefix())...)

	prod := newTxProducer(t)
	const rounds = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 1; r <= rounds; r++ {
			recs := make([]*kgo.Record, 0, products)
			for i, id := range ids {
				p := position.Position{LSN: uint64(r) * 1000, Index: uint32(i + 1)}
				switch {
				case i%50 == 0 && r%10 == 0:
					recs = append(recs, tombstoneRecord(topic, id, p)) // deleted, recreated next round
				default:
					recs = append(recs, levelRecord(t, topic, id, p, int32(r)))
				}
			}
			if err := prod.write(recs...); err != nil {
				t.Errorf("round %d: %v", r, err)
				return
			}
			switch r {
			case 12:
				if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Errorf("killing projector: %v", err)
				}
			case 20:
				start(t, "projector", projectorArgs(topic, group, st.Prefix())...)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()

	last := lastInTopic(t, topic)
	if len(last) != products {
		t.Fatalf("topic holds %d products, want %d", len(last), products)
	}
	// A's partitions move only after its session times out (45s by default).
	testenv.Eventually(t, 3*time.Minute, "Redis to equal the topic", func() string { return matchesTopic(t, st, last) })
	close(stopWatch)
	<-watched
	if backwards.Load() > 0 || reads.Load() == 0 {
		t.Errorf("%d backward moves in %d reads", backwards.Load(), reads.Load())
	}
}
