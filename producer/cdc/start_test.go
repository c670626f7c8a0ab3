package cdc

import (
	"errors"
	"testing"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
)

func TestDecideStart(t *testing.T) {
	const us, them = "kafka cluster A, checkpoint topic x", "kafka cluster A, checkpoint topic y"
	slot := func(confirmed uint64) *source.Slot { return &source.Slot{Name: "s", ConfirmedFlush: confirmed} }
	owner := func(who string, lsn uint64) *source.Owner { return &source.Owner{Deployment: who, ConfirmedLSN: lsn} }
	done := sink.Checkpoint{Slot: "s", SnapshotDone: true}
	tests := []struct {
		name    string
		f       startFacts
		wantErr error
		resume  bool
		reason  string
		claim   bool
	}{
		{name: "first start", f: startFacts{}, claim: true},
		{name: "own slot, snapshot done", f: startFacts{slot: slot(100), owner: owner(us, 100), cp: done, haveCP: true}, resume: true},
		{name: "own slot, ledger ahead of the slot", f: startFacts{slot: slot(90), owner: owner(us, 100), cp: done, haveCP: true}, resume: true},
		{name: "own slot advanced by someone else", f: startFacts{slot: slot(200), owner: owner(us, 100), cp: done, haveCP: true}, reason: "advanced_elsewhere"},
		{name: "own slot being made (ledger at 0)", f: startFacts{slot: slot(200), owner: owner(us, 0), cp: sink.Checkpoint{Slot: "s"}, haveCP: true}},
		{name: "own slot lost", f: startFacts{slot: &source.Slot{Lost: true, ConfirmedFlush: 100}, owner: owner(us, 100), cp: done, haveCP: true}, reason: "lost"},
		{name: "own slot, checkpoint gone", f: startFacts{slot: slot(100), owner: owner(us, 100)}},
		{name: "own slot gone", f: startFacts{owner: owner(us, 100), cp: done, haveCP: true}},
		{name: "another deployment's slot", f: startFacts{slot: slot(100), owner: owner(them, 100)}, wantErr: source.ErrSlotOwner},
		{name: "another deployment's slot, even with a checkpoint of ours", f: startFacts{slot: slot(100), owner: owner(them, 100), cp: done, haveCP: true}, wantErr: source.ErrSlotOwner},
		{name: "another deployment's slot, taken over", f: startFacts{slot: slot(100), owner: owner(them, 100), takeOver: true}, reason: "taken_over", claim: true},
		{name: "slot without owner or checkpoint", f: startFacts{slot: slot(100)}, wantErr: source.ErrSlotOwner},
		{name: "slot without owner, taken over", f: startFacts{slot: slot(100), takeOver: true}, reason: "taken_over", claim: true},
		{name: "slot from before the ledger, with our checkpoint", f: startFacts{slot: slot(100), cp: done, haveCP: true}, resume: true, claim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.name, tt.f.deployment = "s", us
			p, err := decideStart(tt.f)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.resume != tt.resume || p.repairReason != tt.reason || p.claim != tt.claim {
				t.Fatalf("plan = %+v, want resume=%v reason=%q claim=%v", p, tt.resume, tt.reason, tt.claim)
			}
		})
	}
}
