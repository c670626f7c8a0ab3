package consume

import (
	"syscall"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// A batch that Redis applied but its replica did not acknowledge is not
// done: its offsets stay uncommitted (a failover then could not lose a
// batch the group counts as applied) until the replica has it.
func TestUnreplicatedBatchIsNotCommitted(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 1)
	group := newGroup(t, adm)
	r := storetest.PrimaryReplica(t)
	st := storetest.NewOn(t, r.Primary)
	if err := st.WaitForReplicas(1, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	onReplica, err := stockstore.New(r.Replica, st.Prefix())
	if err != nil {
		t.Fatal(err)
	}

	if err := r.ReplicaProcess.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	produced := produce(t, true, levelRecord(t, topic, "A", pos(1, 1), 1), levelRecord(t, topic, "B", pos(1, 2), 2))
	c, _ := startConsumer(t, topic, group, st)
	testenv.Eventually(t, 30*time.Second, "applies failing for want of the replica", func() bool {
		return counterValue(t, c.metrics.applyErrs) >= 3
	})
	// The primary holds the batch; the group must not say so.
	if onHand(t, st, "A") != 1 {
		t.Fatalf("the primary lacks the batch it was sent")
	}
	if got := committed(t, adm, group, topic); len(got) != 0 {
		t.Fatalf("offsets committed for a batch no replica acknowledged: %v", got)
	}

	if err := r.ReplicaProcess.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	last := lastOffsets(produced)[0]
	testenv.Eventually(t, 30*time.Second, "the offset committed once the replica has the batch", func() bool {
		return committed(t, adm, group, topic)[0] == last+2
	})
	if onHand(t, onReplica, "A") != 1 || onHand(t, onReplica, "B") != 2 {
		t.Fatalf("offsets committed, but the replica lacks the batch")
	}
}
