package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/state"
	"github.com/stockpipe/stock/producer/statestore"
	"github.com/stockpipe/stock/schemas"
)

// Recovery reads back what this deployment wrote to Kafka. Only the producer
// writes its topics, and only inside Kafka transactions; anything else found
// there (a stray kcat -P, a test pointed at the wrong cluster, a replayed
// backup) is not its own. A record it did not write must never stop it
// from starting (the slot would pin WAL on the primary until the disk
// fills) nor change its state: it is skipped, logged at ERROR and counted.

// deployment names this producer in the slot ledger: the Kafka cluster and
// the checkpoint topic its slot's changes go to.
func (p *Pipeline) deployment(ctx context.Context, adm *kadm.Client) (string, error) {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the kafka cluster id: %w", err)
	}
	return fmt.Sprintf("kafka cluster %s, checkpoint topic %s", md.Cluster, p.cfg.CheckpointTopic), nil
}

// foreign counts and logs a record recovery skips.
func (p *Pipeline) foreign(topic string, r *kgo.Record, reason string, err error) {
	p.metrics.foreignRecords.WithLabelValues(topic, reason).Inc()
	p.log.Error("skipping a record the producer did not write", "topic", r.Topic, "partition", r.Partition,
		"offset", r.Offset, "key", fmt.Sprintf("%.64q", r.Key), "reason", reason, "error", err)
}

// readCheckpoint reads this slot's checkpoint and checks it against the
// database: a checkpoint past the database's current WAL position was not
// written by a producer of this database, and resuming from it would skip
// every change up to it. That is a startup error saying how to recover.
func (p *Pipeline) readCheckpoint(ctx context.Context, conn *pgx.Conn) (sink.Checkpoint, bool, error) {
	cfg := &p.cfg
	cp, ok, err := sink.ReadCheckpoint(ctx, p.kopts, cfg.CheckpointTopic, cfg.Slot, func(r *kgo.Record) {
		p.foreign("checkpoints", r, "not_transactional", errors.New("written outside a Kafka transaction"))
	})
	if errors.Is(err, sink.ErrForgedCheckpoint) {
		return cp, false, fmt.Errorf("%w. To recover: write a tombstone for key %q to %s (kcat -P -Z -K: -t %s), "+
			"then restart; the producer takes a new snapshot", err, cfg.Slot, cfg.CheckpointTopic, cfg.CheckpointTopic)
	}
	if err != nil {
		return cp, false, fmt.Errorf("reading checkpoint: %w", err)
	}
	if !ok {
		return cp, false, nil
	}
	var walText string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walText); err != nil {
		return cp, false, fmt.Errorf("reading the current WAL position: %w", err)
	}
	wal, err := pglogrepl.ParseLSN(walText)
	if err != nil {
		return cp, false, fmt.Errorf("parsing the current WAL position %q: %w", walText, err)
	}
	if cp.EndLSN > uint64(wal) || cp.CommitLSN > uint64(wal) || cp.SnapshotLSN > uint64(wal) {
		return cp, false, fmt.Errorf("%w: the checkpoint of slot %s in %s claims commit LSN %s, beyond this database's WAL (%s): "+
			"it was written for another database or forged, and resuming from it would skip real changes. To recover: write a tombstone "+
			"for key %q to %s, then restart; the producer takes a new snapshot", sink.ErrForgedCheckpoint, cfg.Slot, cfg.CheckpointTopic,
			pglogrepl.LSN(cp.CommitLSN), walText, cfg.Slot, cfg.CheckpointTopic)
	}
	return cp, true, nil
}

// rebuildState fills the (empty) state store from the compacted levels
// topic, from this producer's records only, in bounded batches: memory
// stays that of one batch whatever the catalog's size. mark is the
// checkpoint the topic was read at ("" leaves the store unclean).
func (p *Pipeline) rebuildState(ctx context.Context, st *statestore.Store, owner, mark string) (statestore.Meta, error) {
	ld := st.NewLoader(owner)
	defer ld.Close()
	start := time.Now()
	n, skipped := 0, 0
	err := sink.ReadTopic(ctx, p.kopts, p.cfg.LevelsTopic, func(r *kgo.Record) error {
		n++
		if !r.Attrs.IsTransactional() {
			skipped++
			p.foreign("levels", r, "not_transactional", errors.New("written outside a Kafka transaction"))
			return nil
		}
		if src := header(r, schemas.HeaderSource); !strings.HasPrefix(src, schemas.SourcePrefix) {
			// Transactional, but from another tool: every record the
			// producer writes names it as the CloudEvents source.
			skipped++
			p.foreign("levels", r, "not_ours", fmt.Errorf("ce_source %.64q is not a producer's", src))
			return nil
		}
		if err := schemas.CheckID(string(r.Key)); err != nil {
			skipped++
			p.foreign("levels", r, "bad_key", err)
			return nil
		}
		if r.Value == nil {
			// A tombstone names its position only in ce_id; one without is
			// not the producer's.
			if _, err := schemas.PositionOfEventID(header(r, schemas.HeaderID)); err != nil {
				skipped++
				p.foreign("levels", r, "bad_tombstone", err)
				return nil
			}
			return ld.SetProduct(string(r.Key), nil, 0)
		}
		l, err := schemas.DecodeLevelRecord(r.Key, r.Value)
		if err != nil {
			skipped++
			reason := "undecodable"
			if errors.Is(err, schemas.ErrOutOfBounds) {
				reason = "breaks_contract"
			}
			p.foreign("levels", r, reason, err)
			return nil
		}
		return ld.SetProduct(l.ProductID, state.FromLevel(l), 0)
	})
	if err == nil {
		err = ld.Flush()
	}
	var m statestore.Meta
	if err == nil {
		m.Rows, m.Products, err = st.Count()
	}
	if err == nil {
		err = ld.Finish(mark, m.Rows, m.Products)
	}
	if err != nil {
		return m, fmt.Errorf("rebuilding state: %w", err)
	}
	p.metrics.setState(int(m.Rows), int(m.Products))
	p.log.Info("state rebuilt from kafka", "records", n, "skipped", skipped, "products", m.Products, "rows", m.Rows,
		"took", time.Since(start).String())
	return m, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ledgerTimeout bounds one ledger update.
const ledgerTimeout = 10 * time.Second

// keepLedger records in the slot ledger each LSN the stream is about to
// confirm, then lets the stream confirm it. One UPDATE covers every batch
// acked since the last, so under load it runs about as often as statuses
// are sent (at most every 50 ms), never per batch.
func keepLedger(ctx context.Context, l *source.Ledger, stream *source.Stream, m *Metrics) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		acked := stream.Acked()
		if acked <= l.Recorded() {
			continue
		}
		// Not under ctx: pgx closes a connection whose query a context
		// interrupts, and the shutdown records its last LSN on the same
		// connection after ctx ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerTimeout)
		err := l.Record(rctx, acked)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		stream.SetConfirmLimit(acked)
		m.lastConfirmed.SetToCurrentTime()
	}
}
