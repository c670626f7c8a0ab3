package dlq

import (
	"context"
	"fmt"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
)

// Applier writes snapshots, each only if newer than what Redis holds
// (stockstore.Store.Apply).
type Applier interface {
	Apply(ctx context.Context, snaps []stockstore.Snapshot, marks ...stockstore.Watermark) ([]bool, error)
}

// ReplayConfig says how dead letters are re-driven.
type ReplayConfig struct {
	// AllowUntrusted applies dead letters refused as not_transactional or
	// not_ours, which the producer never wrote: only for a topic fed by
	// something else on purpose (the projector's --accept-non-transactional).
	AllowUntrusted bool
	// DryRun checks and reports without writing to Redis.
	DryRun bool
	// BatchSize bounds the snapshots of one Redis round trip.
	BatchSize int
}

// Outcomes of a replayed dead letter.
const (
	// Applied: now valid, and newer than what Redis held.
	Applied = "applied"
	// Stale: now valid, but Redis already holds the same or a newer
	// position of the product; nothing changed.
	Stale = "stale"
	// Valid: now valid; not applied (dry run).
	Valid = "valid"
	// Refused: still fails the checks, or cannot be replayed; it stays a
	// dead letter.
	Refused = "refused"
	// Untrusted: not the producer's record; refused without AllowUntrusted.
	Untrusted = "untrusted"
)

// Result is what became of one dead letter.
type Result struct {
	Letter
	Outcome string
	// Detail says why a letter was refused or untrusted.
	Detail string
}

// Report counts the outcomes of a replay.
type Report map[string]int

// Replay re-reads the dead letters cfg selects and applies those that now
// pass the projector's checks, calling out with each one's result (in order
// per partition). Replaying twice changes nothing more: the write is
// position-checked, so a dead letter older than what Redis holds is Stale.
// It writes no watermark: the projector's offsets and watermarks speak of the
// levels topic, which a replay does not read.
func Replay(ctx context.Context, cfg Config, rc ReplayConfig, store Applier, out func(Result)) (Report, error) {
	rc.BatchSize = max(rc.BatchSize, 1)
	rep := Report{}
	emit := func(r Result) {
		rep[r.Outcome]++
		out(r)
	}
	var pending []Letter
	var snaps []stockstore.Snapshot
	flush := func() error {
		if len(snaps) == 0 {
			return nil
		}
		applied := make([]bool, len(snaps))
		if !rc.DryRun {
			var err error
			if applied, err = store.Apply(ctx, snaps); err != nil {
				return fmt.Errorf("applying %d re-driven snapshots (nothing is lost: run the replay again): %w", len(snaps), err)
			}
		}
		for i, l := range pending {
			switch {
			case rc.DryRun:
				emit(Result{Letter: l, Outcome: Valid})
			case applied[i]:
				emit(Result{Letter: l, Outcome: Applied})
			default:
				emit(Result{Letter: l, Outcome: Stale, Detail: "redis holds the same or a newer position"})
			}
		}
		pending, snaps = pending[:0], snaps[:0]
		return nil
	}
	err := Read(ctx, cfg, func(l Letter) error {
		tr, outcome, why := check(cfg, rc, l)
		if outcome != "" {
			emit(Result{Letter: l, Outcome: outcome, Detail: why})
			return nil
		}
		s, reason, err := consume.SnapshotOf(l.Record, tr)
		if err != nil {
			emit(Result{Letter: l, Outcome: Refused, Detail: reason + ": " + err.Error()})
			return nil
		}
		pending, snaps = append(pending, l), append(snaps, s)
		if len(snaps) >= rc.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return rep, err
}

// check decides, from the projector's dlq_* headers, whether a dead letter
// may be checked again at all and with which trust; a non-empty outcome
// refuses it outright.
func check(cfg Config, rc ReplayConfig, l Letter) (tr consume.Trust, outcome, why string) {
	switch {
	case l.ReasonCode == "":
		return tr, Refused, "no dlq_reason_code: not a dead letter the projector wrote"
	case l.FromTopic != cfg.Topic:
		return tr, Refused, fmt.Sprintf("dead-lettered from topic %q, not %q", l.FromTopic, cfg.Topic)
	case l.OriginalBytes > 0:
		return tr, Refused, fmt.Sprintf("cut to fit the dead-letter topic (the record had %d bytes)", l.OriginalBytes)
	case l.ReasonCode == consume.ReasonNotTransactional || l.ReasonCode == consume.ReasonNotOurs:
		if !rc.AllowUntrusted {
			return tr, Untrusted, "the producer never wrote it (" + l.ReasonCode + "); --allow-untrusted applies it anyway"
		}
		return consume.Trust{AcceptNonTransactional: true}, "", ""
	}
	// The projector checks the transaction first: any other reason means
	// the original was transactional. A dead letter is a copy written
	// outside a transaction, so only the source check can be run again.
	return consume.Trust{Copied: true}, "", ""
}
