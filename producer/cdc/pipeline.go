package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/statestore"
	"github.com/stockpipe/stock/schemas"
)

// ErrSlotInUse is returned when another process streams from the slot.
var ErrSlotInUse = errors.New("replication slot is in use by another process")

// Pipeline is one producer instance.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	kopts   []kgo.Opt
	// hooks go on the transactional writer's client only: metric hooks
	// such as kprom register once per registry.
	hooks []kgo.Opt
	build recordBuilder
}

// New checks cfg and prepares a pipeline; writerOpts (hooks such as kprom)
// are added to the transactional writer's client, which outlives one Run.
func New(cfg Config, log *slog.Logger, metrics *Metrics, writerOpts ...kgo.Opt) (*Pipeline, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid producer config: %w", err)
	}
	p := &Pipeline{cfg: cfg, log: log, metrics: metrics}
	// The client logs every transaction at info; keep warnings and errors.
	klog := slog.New(minLevel{slog.LevelWarn, log.Handler()}).With("component", "kafka")
	kopts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	p.kopts = append(kopts, kgo.WithLogger(kslog.New(klog)))
	// The writer's client also reports what its transactions waited for,
	// and refreshes metadata for a retried produce within KafkaMetadataMinAge
	// instead of franz-go's 5 s.
	watch := newKafkaWatch(kslog.New(klog), metrics)
	codec, _ := sink.Compression(cfg.KafkaCompression) // validated
	p.hooks = append(writerOpts, kgo.WithLogger(watch), kgo.WithHooks(watch), kgo.MetadataMinAge(cfg.KafkaMetadataMinAge),
		kgo.ProducerBatchCompression(codec))
	p.build = newRecordBuilder(&p.cfg)
	return p, nil
}

// Run runs the pipeline until ctx ends (nil) or something fails (the
// error). State lives only inside one Run: a caller may call Run again
// after an error, and it recovers from Kafka.
func (p *Pipeline) Run(ctx context.Context) error {
	cfg := &p.cfg
	// Topic metadata is read right after topics are created: do not let
	// the client serve it from a cache of the last five seconds.
	adm, err := kgo.NewClient(append(p.kopts[:len(p.kopts):len(p.kopts)], kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("creating kafka admin client: %w", err)
	}
	kadmc := kadm.NewClient(adm)
	topicRepl, err := sink.ChooseReplication(ctx, kadmc, cfg.ReplicationFactor, cfg.MinInsyncReplicas,
		cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic, cfg.CheckpointTopic)
	if err != nil {
		adm.Close()
		return err
	}
	if topicRepl.FactorChosen {
		p.log.Info("replication of the topics chosen from the cluster", "brokers", topicRepl.Brokers,
			"replication_factor", topicRepl.Factor, "min_insync_replicas", topicRepl.MinInsync)
	}
	if risk, err := sink.TransactionLogRisk(ctx, kadmc, topicRepl.Brokers); err != nil {
		p.log.Warn("cannot check the broker's transaction state log", "error", err)
	} else if risk != "" {
		p.log.Warn(risk)
	}
	err = sink.EnsureTopics(ctx, kadmc, sink.Specs(cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic,
		cfg.CheckpointTopic, cfg.Partitions, topicRepl.Factor, topicRepl.MinInsync, cfg.Retention.Milliseconds()))
	if err != nil {
		if topicRepl.FactorChosen && errors.Is(err, sink.ErrTopicMismatch) {
			err = fmt.Errorf("%w (the replication factor was chosen from a cluster of %d brokers: "+
				"set --replication-factor and --min-insync-replicas to keep existing topics as they are)", err, topicRepl.Brokers)
		}
		adm.Close()
		return fmt.Errorf("ensuring topics: %w", err)
	}
	deployment, err := p.deployment(ctx, kadmc)
	adm.Close()
	if err != nil {
		return err
	}
	if cfg.Registry.URL != "" {
		reg, err := schemas.NewRegistryClient(cfg.Registry)
		if err != nil {
			return err
		}
		topics := map[string]string{
			schemas.TopicLevels: cfg.LevelsTopic, schemas.TopicChanges: cfg.ChangesTopic, schemas.TopicAlerts: cfg.AlertsTopic,
		}
		if cfg.Registry.LookupOnly {
			err = schemas.Lookup(ctx, reg, p.build.codec, topics)
		} else {
			err = schemas.Register(ctx, reg, p.build.codec, topics)
		}
		if err != nil {
			return fmt.Errorf("schema registry: %w", err)
		}
	}

	// The slot is checked before the Kafka writer exists: creating the
	// writer fences any other producer with the same transactional id, so
	// a second instance started beside a running one (a standby, an
	// overlapping deploy) must give up before it aborts the running one's
	// transaction.
	conn, err := source.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	claimed, err := source.ClaimSlot(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	if !claimed {
		return fmt.Errorf("%w: %s (another producer holds it)", ErrSlotInUse, cfg.Slot)
	}
	if err := source.EnsurePublication(ctx, conn, cfg.Publication); err != nil {
		return err
	}
	slot, err := source.LookupSlot(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	if slot != nil && slot.Active {
		// Held by something else than a producer (a pg_recvlogical, a
		// walsender of a previous run that PostgreSQL has not reaped yet).
		return fmt.Errorf("%w: %s", ErrSlotInUse, cfg.Slot)
	}

	w, err := sink.NewWriter(ctx, append(p.kopts[:len(p.kopts):len(p.kopts)], p.hooks...), cfg.TransactionalID, cfg.CheckpointTopic, cfg.Slot)
	if err != nil {
		return err
	}
	defer w.Close(context.WithoutCancel(ctx))
	// A Produce waiting for room in a full buffer while Kafka is
	// unreachable must not hold a stopped run for ever: past the shutdown
	// budget the writer gives up (nothing it held is confirmed).
	defer stopAfter(ctx, cfg.ShutdownTimeout, w.Stop)()
	w.OnCommitted = func(topic string, n int) { p.metrics.recordsProduced.WithLabelValues(topic).Add(float64(n)) }

	cp, haveCP, err := p.readCheckpoint(ctx, conn)
	if err != nil {
		return err
	}

	repl, err := source.ConnectReplication(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))

	if err := source.EnsureLedger(ctx, conn); err != nil {
		return err
	}
	owner, err := source.LookupOwner(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	plan, err := decideStart(startFacts{name: cfg.Slot, slot: slot, owner: owner, deployment: deployment,
		cp: cp, haveCP: haveCP, takeOver: cfg.TakeOverSlot})
	if err != nil {
		return err
	}
	recorded := uint64(0)
	if owner != nil {
		recorded = owner.ConfirmedLSN
	}
	if plan.claim {
		// A slot this deployment adopts keeps its confirmed LSN; one it
		// takes over or is about to make starts from nothing.
		if slot != nil && plan.repairReason == "" {
			recorded = slot.ConfirmedFlush
		} else {
			recorded = 0
		}
		if err := source.SetOwner(ctx, conn, cfg.Slot, deployment, recorded); err != nil {
			return err
		}
		p.log.Info("slot ledger names this deployment", "slot", cfg.Slot, "deployment", deployment)
	}

	// The state, once the slot is known to be this deployment's: a run
	// refused above leaves the store alone.
	stateOwner := p.stateOwner(deployment)
	store, meta, err := p.openState(ctx, stateOwner, cp, haveCP)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			p.log.Warn("closing the state store", "error", err)
		}
	}()
	h := &handler{cfg: p.cfg, log: p.log, metrics: p.metrics, build: p.build, stateBudget: p.stateBudget(),
		store: store, owner: stateOwner, w: w, dirty: make(map[string]*dirtyProduct)}
	var start uint64
	if plan.repairReason != "" {
		// The slot holds nothing that lines up with this deployment's
		// Kafka: say so loudly; the snapshot repairs every product.
		p.metrics.slotRepairs.WithLabelValues(plan.repairReason).Inc()
		p.log.Error("replication slot cannot be trusted; taking a new snapshot to repair", "slot", cfg.Slot,
			"reason", plan.repairReason, "detail", plan.why)
	}
	if plan.resume {
		start = slot.ConfirmedFlush
		h.skipThrough = cp.CommitLSN
		h.snapshotLSN = cp.SnapshotLSN
		p.log.Info("resuming stream", "slot", cfg.Slot, "confirmed_lsn", pglogrepl.LSN(start).String(),
			"kafka_commit_lsn", pglogrepl.LSN(cp.CommitLSN).String(), "state_products", meta.Products)
	} else {
		// From here to the snapshot's end the store is written ahead of
		// Kafka; say so first, durably.
		if err := store.MarkUnclean(stateOwner); err != nil {
			return err
		}
		if haveCP && cp.SnapshotDone {
			// Kafka says it is in line with a slot that is gone or lost.
			// Say in Kafka that it no longer is before the slot changes:
			// if this run ends before the new snapshot's last chunk, the
			// next one finds a slot that looks healthy and must not resume
			// from it as if the snapshot had been written.
			redo := cp
			redo.SnapshotDone = false
			if err := w.Begin(); err != nil {
				return err
			}
			if err := w.Commit(ctx, redo); err != nil {
				return fmt.Errorf("marking the snapshot to be taken again: %w", err)
			}
		}
		if slot != nil {
			// Either Kafka lost its checkpoint or a snapshot was cut short:
			// nothing this slot holds can be trusted to line up with Kafka.
			p.log.Warn("dropping slot to take a fresh snapshot", "slot", cfg.Slot, "checkpoint_found", haveCP, "snapshot_done", cp.SnapshotDone, "why", plan.why)
			if recorded != 0 {
				// Until the new slot's point is recorded, the ledger must
				// not vouch for a slot of that name.
				if err := source.SetOwner(ctx, conn, cfg.Slot, deployment, 0); err != nil {
					return err
				}
				recorded = 0
			}
			if err := source.DropSlot(ctx, conn, cfg.Slot); err != nil {
				return err
			}
		}
		created, err := source.CreateSlot(ctx, repl, cfg.Slot)
		if err != nil {
			return err
		}
		recorded = created.ConsistentPoint
		if err := source.SetOwner(ctx, conn, cfg.Slot, deployment, recorded); err != nil {
			return err
		}
		p.log.Info("slot created", "slot", cfg.Slot, "consistent_point", pglogrepl.LSN(created.ConsistentPoint).String())
		if err := h.snapshot(ctx, conn, created); err != nil {
			return err
		}
		start = created.ConsistentPoint
		if meta, _, err = store.Meta(); err != nil {
			return err
		}
	}
	h.st = store.NewView(p.stateBudget(), meta.Rows, meta.Products)
	p.metrics.setState(int(meta.Rows), int(meta.Products))

	stream := source.NewStream(repl, source.StreamConfig{
		Slot: cfg.Slot, Publication: cfg.Publication,
		StatusInterval: cfg.StatusInterval, IdleInterval: max(cfg.BatchLinger, time.Millisecond),
		Limited: true,
	}, p.log)
	// The stream confirms nothing the ledger has not recorded first.
	ledger := source.NewLedger(conn, cfg.Slot, deployment, recorded)
	stream.SetConfirmLimit(recorded)
	h.stream = stream
	h.ledger = ledger
	h.cur = &batch{}
	h.com = newCommitter(w, stream, store, stateOwner, p.metrics, p.log)

	g, gctx := errgroup.WithContext(ctx)
	defer stopAfter(gctx, cfg.ShutdownTimeout, w.Stop)() // also when a part failed
	g.Go(h.com.run)
	g.Go(func() error {
		err := stream.Run(gctx, start, h)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return h.shutdown(ctx)
		}
		// Stop the committer; a transaction it left open is aborted when
		// the writer closes.
		h.com.close()
		return err
	})
	g.Go(func() error { return p.heartbeat(gctx, stream, store) })
	g.Go(func() error { return keepLedger(gctx, ledger, stream, p.metrics) })
	return g.Wait()
}

// heartbeat writes a transactional logical message so an idle database
// still produces commits to confirm, and samples the slot's lag.
func (p *Pipeline) heartbeat(ctx context.Context, stream *source.Stream, store *statestore.Store) error {
	conn, err := source.Connect(ctx, p.cfg.PostgresURL)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while still connecting: a clean stop, not a failure.
			return nil
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, 'stock.heartbeat', '')`); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("writing heartbeat: %w", err)
		}
		if lag, err := source.SlotLagBytes(ctx, conn, p.cfg.Slot); err == nil && lag != nil {
			p.metrics.slotLagBytes.Set(float64(*lag))
		}
		p.metrics.stateDiskBytes.Set(float64(store.DiskBytes()))
		if rows := int(p.metrics.rowsSeen.Load()); rows > 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			p.metrics.bytesPerRow.Set(float64(ms.HeapAlloc) / float64(rows))
		}
		if recvd, acked := stream.Received(), stream.Acked(); recvd > acked {
			p.metrics.confirmLagBytes.Set(float64(recvd - acked))
		} else {
			p.metrics.confirmLagBytes.Set(0)
		}
	}
}

// Permanent reports whether err comes from a mismatch that retrying cannot
// fix (topics, publication or slot configured differently than found).
func Permanent(err error) bool {
	return errors.Is(err, sink.ErrTopicMismatch) || errors.Is(err, source.ErrPublicationMismatch) ||
		errors.Is(err, source.ErrSlotMismatch) || errors.Is(err, source.ErrSlotOwner) || errors.Is(err, sink.ErrForgedCheckpoint)
}

// minLevel drops records below a level before they reach the wrapped handler.
type minLevel struct {
	min slog.Level
	slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.min, h.Handler.WithAttrs(as)}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.min, h.Handler.WithGroup(name)}
}

// RequestResnapshot writes the resnapshot signal into the WAL; the producer
// streaming that database acts on it in commit order. It returns the
// signal's LSN.
func RequestResnapshot(ctx context.Context, postgresURL string, productIDs []string) (string, error) {
	conn, err := source.Connect(ctx, postgresURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	body, err := json.Marshal(struct {
		ProductIDs []string `json:"product_ids,omitempty"`
	}{productIDs})
	if err != nil {
		return "", err
	}
	var lsn string
	if err := conn.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2::text)::text`, change.SignalResnapshot, string(body)).Scan(&lsn); err != nil {
		return "", fmt.Errorf("writing resnapshot signal: %w", err)
	}
	return lsn, nil
}

// stopAfter calls stop once grace has passed since ctx was done, unless the
// returned function was called first.
func stopAfter(ctx context.Context, grace time.Duration, stop func()) (cancel func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			stop()
		}
	}()
	return func() { close(done) }
}
