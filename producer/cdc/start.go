package cdc

import (
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
)

// startFacts is what a run knows when it decides how to start: the slot,
// its ledger entry, and this deployment's checkpoint in Kafka.
type startFacts struct {
	name       string        // the slot's name
	slot       *source.Slot  // nil: no slot
	owner      *source.Owner // nil: no ledger entry
	deployment string        // this deployment, as the ledger names it
	cp         sink.Checkpoint
	haveCP     bool
	takeOver   bool // --take-over-slot
}

// startPlan is how a run starts: resume streaming from the slot, or take a
// new slot and snapshot (repair), dropping the old slot if there is one.
type startPlan struct {
	resume bool
	// repairReason, for a repair of a slot that was there, is the
	// slot_repairs_total label, empty when the repair is routine (first
	// start, a snapshot cut short, a checkpoint gone).
	repairReason string
	// claim: record this deployment as the slot's owner before anything
	// else (a ledger entry missing or naming another deployment).
	claim bool
	// why says in words, for the log.
	why string
}

// decideStart is the start decision, pure so that every case has a test.
// A slot is never read or dropped unless the ledger names this deployment
// its owner, or no ledger entry exists and this deployment's Kafka holds a
// checkpoint of it (a slot made before the ledger existed), or the operator
// said --take-over-slot.
func decideStart(f startFacts) (startPlan, error) {
	var p startPlan
	switch {
	case f.owner != nil && f.owner.Deployment != f.deployment:
		if !f.takeOver {
			return p, fmt.Errorf("%w: slot %s is recorded (table stock_producer_slots, %s) as read by %q, and this producer is %q; "+
				"reading or dropping it would take its changes from that deployment's topics. Use a slot of this deployment's own (--slot), "+
				"or --take-over-slot if that deployment is gone for good", source.ErrSlotOwner, f.name, f.owner.UpdatedAt.Format("2006-01-02 15:04:05Z07:00"),
				f.owner.Deployment, f.deployment)
		}
		return startPlan{repairReason: "taken_over", claim: true, why: "taking the slot over from " + f.owner.Deployment}, nil
	case f.owner == nil && f.slot != nil && !f.haveCP:
		if !f.takeOver {
			return p, fmt.Errorf("%w: slot %s exists, no deployment is recorded as its owner (table stock_producer_slots), and this deployment's "+
				"checkpoint topic holds nothing of it: another deployment, or another tool, may be reading it. Use a slot of this deployment's own (--slot), "+
				"or --take-over-slot to drop it and start over with a snapshot", source.ErrSlotOwner, f.name)
		}
		return startPlan{repairReason: "taken_over", claim: true, why: "taking over a slot without an owner"}, nil
	case f.owner == nil:
		// No slot yet, or a slot this deployment made before the ledger
		// existed (its checkpoint is in our Kafka): claim it, then as usual.
		p.claim = true
	case f.slot != nil && f.owner.ConfirmedLSN != 0 && f.slot.ConfirmedFlush > f.owner.ConfirmedLSN:
		// This deployment records an LSN before it confirms it: a slot
		// confirmed past that was read by someone else, and the changes in
		// between are in nobody's topics of ours.
		return startPlan{repairReason: "advanced_elsewhere", why: fmt.Sprintf(
			"slot confirmed at %s by someone else; this deployment confirmed at most %s: the changes in between never reached its topics",
			pglogrepl.LSN(f.slot.ConfirmedFlush), pglogrepl.LSN(f.owner.ConfirmedLSN))}, nil
	}
	switch {
	case f.slot != nil && f.slot.Lost:
		p.repairReason, p.why = "lost", "replication slot lost its WAL (max_slot_wal_keep_size)"
	case f.slot != nil && f.haveCP && f.cp.SnapshotDone:
		p.resume, p.why = true, "resuming stream"
	case f.slot == nil:
		p.why = "no slot: new slot and snapshot"
	default:
		p.why = "snapshot not finished or checkpoint missing: new slot and snapshot"
	}
	return p, nil
}
