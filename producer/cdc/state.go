package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/statestore"
)

// The per-product state lives in a store on local disk (statestore), a
// copy of what Kafka committed. Kafka's checkpoint is the truth: a run uses
// the store as it finds it only when the store records exactly the
// checkpoint Kafka holds, and rebuilds it from stock.levels.v1 otherwise.

// defaultStateDir is the state's folder under the working directory: one
// per deployment, named after its transactional id (which --transactional-id
// may set to anything; what a file name cannot hold becomes _).
func defaultStateDir(transactionalID string) string {
	name := []byte(transactionalID)
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			name[i] = '_'
		}
	}
	if len(name) == 0 || name[0] == '.' {
		name = append([]byte("_"), name...)
	}
	return filepath.Join(".local", "producer-state", string(name))
}

// stateOwner names, in the store, the deployment whose Kafka it copies.
func (p *Pipeline) stateOwner(deployment string) string {
	return fmt.Sprintf("%s, levels topic %s, slot %s", deployment, p.cfg.LevelsTopic, p.cfg.Slot)
}

// markOf is the store's mark of a checkpoint: every field of it as Kafka
// holds it. The time it was written (to the nanosecond, set once per Kafka
// transaction) tells two transactions apart even where their LSNs are the
// same (a snapshot's chunks, its redo marker).
type markOf struct {
	CommitLSN    uint64    `json:"commit_lsn"`
	EndLSN       uint64    `json:"end_lsn"`
	SnapshotLSN  uint64    `json:"snapshot_lsn"`
	SnapshotDone bool      `json:"snapshot_done"`
	WrittenAt    time.Time `json:"written_at"`
}

// checkpointMark is the mark of a committed checkpoint.
func checkpointMark(cp sink.Checkpoint) string {
	b, _ := json.Marshal(markOf{cp.CommitLSN, cp.EndLSN, cp.SnapshotLSN, cp.SnapshotDone, cp.WrittenAt.UTC()})
	return string(b)
}

// stateVerdict says why the store cannot be used as it is for Kafka's
// checkpoint (the stock_producer_state_rebuilds_total reason), or "" when
// it can. ok is whether the store has a meta at all.
func stateVerdict(m statestore.Meta, ok bool, owner string, cp sink.Checkpoint, haveCP bool) string {
	switch {
	case !ok:
		return "missing"
	case m.Format != statestore.Format:
		return "format"
	case m.Owner != owner:
		return "other_owner"
	case !m.Clean:
		return "unclean"
	case !haveCP:
		return "no_checkpoint"
	case m.Mark == checkpointMark(cp):
		return ""
	}
	var have markOf
	if err := json.Unmarshal([]byte(m.Mark), &have); err != nil {
		return "corrupt"
	}
	// Only for the reason: whichever way it differs, it is rebuilt.
	switch {
	case have.SnapshotLSN < cp.SnapshotLSN, have.SnapshotLSN == cp.SnapshotLSN && have.CommitLSN < cp.CommitLSN:
		return "behind"
	case have.SnapshotLSN > cp.SnapshotLSN, have.SnapshotLSN == cp.SnapshotLSN && have.CommitLSN > cp.CommitLSN:
		return "ahead"
	case have.WrittenAt.Before(cp.WrittenAt):
		return "behind"
	}
	return "ahead"
}

// StateOffHeapMiB is what of the state's memory Pebble allocates outside the
// Go heap (with cgo): its block cache and memtables, three quarters of
// StateCacheMiB. The collector's soft limit leaves room for it.
func (c Config) StateOffHeapMiB() int { return c.StateCacheMiB * 3 / 4 }

// stateBudget is the memory the view keeps decoded products in: a quarter
// of the state's cache; Pebble's block cache has another quarter, its two
// memtables the last half. Memtables of 32 MiB (at 256) made a rebuild of
// 10,000,000 rows a quarter slower than 64 MiB ones: a load in Kafka's
// order is bound by the compactions that sort it, and larger memtables
// sort more of it before it reaches the disk.
func (p *Pipeline) stateBudget() int64 { return int64(p.cfg.StateCacheMiB) << 20 / 4 }

// openState opens the state store and brings it in line with Kafka's
// checkpoint: used as it is when it records exactly that checkpoint,
// rebuilt from the levels topic otherwise. It returns the store and the
// counts of what it holds.
func (p *Pipeline) openState(ctx context.Context, owner string, cp sink.Checkpoint, haveCP bool) (*statestore.Store, statestore.Meta, error) {
	cacheMiB := int64(p.cfg.StateCacheMiB)
	st, wiped, err := statestore.Open(statestore.Options{Dir: p.cfg.StateDir, CacheBytes: cacheMiB << 20 / 4,
		MemTableBytes: cacheMiB << 20 / 4, Log: p.log})
	if err != nil {
		return nil, statestore.Meta{}, err
	}
	m, ok, err := st.Meta()
	if err != nil {
		p.log.Warn("state store meta unreadable", "error", err)
		ok, wiped = false, true
	}
	reason := stateVerdict(m, ok, owner, cp, haveCP)
	if wiped {
		reason = "unreadable"
	}
	if reason == "" {
		p.log.Info("state store matches kafka's checkpoint; no rebuild", "dir", p.cfg.StateDir,
			"products", m.Products, "rows", m.Rows, "disk_mib", st.DiskBytes()>>20)
		return st, m, nil
	}
	p.metrics.stateRebuilds.WithLabelValues(reason).Inc()
	p.log.Warn("rebuilding the state store from kafka", "dir", p.cfg.StateDir, "reason", reason,
		"store_mark", m.Mark, "kafka_mark", checkpointMark(cp), "store_owner", m.Owner)
	if err := st.Reset(); err != nil {
		st.Close()
		return nil, m, fmt.Errorf("resetting the state store: %w", err)
	}
	mark := ""
	if haveCP {
		mark = checkpointMark(cp)
	}
	m, err = p.rebuildState(ctx, st, owner, mark)
	if err != nil {
		st.Close()
		return nil, m, err
	}
	return st, m, nil
}
