package stockstore_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// With WaitForReplicas, Apply returns only once the replica holds the batch:
// what it returned for is readable on the replica at once. A replica that
// does not acknowledge in time makes Apply fail with ErrNotReplicated (the
// projector then keeps the batch's offsets uncommitted and retries it), and
// the retry succeeds once the replica is back.
func TestApplyWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	r := storetest.PrimaryReplica(t)
	st := storetest.NewOn(t, r.Primary)
	if err := st.WaitForReplicas(1, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	onReplica, err := stockstore.New(r.Replica, st.Prefix())
	if err != nil {
		t.Fatal(err)
	}

	if _, err := st.Apply(ctx, []stockstore.Snapshot{snap("SKU-R1", pos(10, 1), 50)}); err != nil {
		t.Fatalf("apply with the replica up: %v", err)
	}
	if p, err := onReplica.Get(ctx, "SKU-R1"); err != nil || p.OnHand != 50 {
		t.Fatalf("right after Apply the replica holds %+v, %v; want on_hand 50", p, err)
	}

	// A replica that stops acknowledging: the batch is not confirmed.
	if err := r.ReplicaProcess.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	batch := []stockstore.Snapshot{snap("SKU-R1", pos(11, 1), 60)}
	_, err = st.Apply(ctx, batch)
	if !errors.Is(err, stockstore.ErrNotReplicated) {
		t.Fatalf("apply with the replica stopped: %v, want ErrNotReplicated", err)
	}
	if err := r.ReplicaProcess.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The retry of the same batch: confirmed, and on the replica.
	var retryErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, retryErr = st.Apply(ctx, batch); retryErr == nil {
			break
		}
	}
	if retryErr != nil {
		t.Fatalf("retrying the batch with the replica back: %v", retryErr)
	}
	if p, err := onReplica.Get(ctx, "SKU-R1"); err != nil || p.OnHand != 60 {
		t.Fatalf("after the confirmed retry the replica holds %+v, %v; want on_hand 60", p, err)
	}

	// Asking for more replicas than there are never confirms.
	if err := st.WaitForReplicas(2, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, []stockstore.Snapshot{snap("SKU-R2", pos(12, 1), 5)}); !errors.Is(err, stockstore.ErrNotReplicated) {
		t.Fatalf("two replicas asked of one: %v, want ErrNotReplicated", err)
	}
}

func TestWaitForReplicasRefusesBadSettings(t *testing.T) {
	st, _ := newStore(t)
	for _, tt := range []struct {
		n       int
		timeout time.Duration
	}{{-1, time.Second}, {1, 0}} {
		if err := st.WaitForReplicas(tt.n, tt.timeout); err == nil {
			t.Errorf("WaitForReplicas(%d, %s) accepted", tt.n, tt.timeout)
		}
	}
	if err := st.WaitForReplicas(0, 0); err != nil {
		t.Errorf("not waiting refused: %v", err)
	}
}

// The replication id a projector watches changes when the replica is
// promoted in the primary's place: the moment the guard must look for
// writes lost with the old primary. A primary alone keeps its id.
func TestReplicationIDChangesOnPromotion(t *testing.T) {
	ctx := context.Background()
	r := storetest.PrimaryReplica(t)
	onPrimary := storetest.NewOn(t, r.Primary)
	onReplica, err := stockstore.New(r.Replica, onPrimary.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	before, err := onPrimary.ReplicationID(ctx)
	if err != nil || before == "" {
		t.Fatalf("the primary's replication id: %q, %v", before, err)
	}
	if again, err := onPrimary.ReplicationID(ctx); err != nil || again != before {
		t.Fatalf("the primary's replication id changed by itself: %q then %q (%v)", before, again, err)
	}
	if got, err := onReplica.ReplicationID(ctx); err != nil || got != before {
		t.Fatalf("an in-sync replica has replication id %q (%v), want its primary's %q", got, err, before)
	}
	if err := r.Replica.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if after, err := onReplica.ReplicationID(ctx); err != nil || after == before || after == "" {
		t.Fatalf("the promoted replica's replication id: %q (%v), want a new one (was %q)", after, err, before)
	}
}
