// Package stockstore owns the Redis key layout of the stock cache: the
// projector writes product snapshots and partition watermarks through it and
// the query API reads served documents through it, so the layout lives in
// one place (docs/redis-layout.md). Writes are idempotent and atomic per
// product (a Lua script applies a snapshot only if its position is newer);
// reads are one round trip, however many products.
//
// It must never import Kafka, PostgreSQL, the Avro schemas or HTTP code:
// converting a Kafka record into a Snapshot is the projector's job.
package stockstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/position"
)

// ErrNotFound is returned by Get for a product the store does not hold
// (never seen, or deleted by a tombstone).
var ErrNotFound = errors.New("product not found")

// Store reads and writes the stock cache under one key prefix. A Store from
// New follows the active generation (generation.go); one from Rebuild.Store
// is pinned to one generation, which is how a rebuild writes a new one.
type Store struct {
	rdb  redis.UniversalClient
	base string
	// pinned is the generation of a pinned store, -1 for one that follows
	// the active generation.
	pinned int64
	// requireGen makes writes that follow the active generation fail with
	// ErrNoGeneration when there is none (RequireGeneration).
	requireGen bool
	// buckets is the number of slot groups of the Cluster layout, 0 on a
	// single node (keys.go).
	buckets int
	gen     *genCache // shared by the stores derived from one New
	now     func() time.Time
	// wait makes writes wait for replicas (WaitForReplicas).
	wait replicaWait
}

// New returns a Store over rdb with all keys under prefix (programs default
// to DefaultPrefix). Distinct prefixes are independent stores, which tests
// rely on. Over a *redis.ClusterClient the store uses the Cluster layout
// (ClusterBuckets slot groups), over any other client the single-node one.
func New(rdb redis.UniversalClient, prefix string) (*Store, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	buckets := 0
	if _, ok := rdb.(*redis.ClusterClient); ok {
		buckets = ClusterBuckets
	}
	return &Store{rdb: rdb, base: prefix, pinned: -1, buckets: buckets,
		gen: &genCache{ttl: GenerationCacheTTL}, now: time.Now}, nil
}

// nBuckets is how many change indexes, low-stock sets per warehouse and
// generation pointer copies the layout has: 1 on a single node.
func (s *Store) nBuckets() int { return max(s.buckets, 1) }

// bucketTag is the hash tag the scripts put in the key names of bucket k
// (” on a single node).
func (s *Store) bucketTag(k int) string {
	if s.buckets == 0 {
		return ""
	}
	return bucketTag(k)
}

// pointer is the generation pointer the scripts of bucket k read.
func (s *Store) pointer(k int) string { return pointerKey(s.base, s.buckets, k) }

// nextPointer is the next-generation pointer the write scripts of bucket k
// read (Rebuild.Mirror).
func (s *Store) nextPointer(k int) string { return nextPointerKey(s.base, s.buckets, k) }

// Prefix returns the base key prefix of the store.
func (s *Store) Prefix() string { return s.base }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// LoadScripts loads the Lua scripts into Redis's script cache (on every
// master of a Cluster). Apply reloads them by itself when Redis lost them, so
// calling this at start only saves a round trip on the first batch.
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range allScripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading lua script: %w", err)
		}
	}
	return nil
}

// scriptCall is one EVALSHA of a pipelined batch.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// Apply writes snaps and then marks in one pipelined round trip. Each
// snapshot is applied atomically, and only if its position is newer than the
// product's stored one (snapshot or tombstone); applied[i] reports whether
// snaps[i] was. Replaying a batch is therefore harmless. Several snapshots of
// one product in a batch are applied in order: callers should dedupe first
// (latest position wins) to save the work.
//
// Watermarks only move forward and are written after the batch's snapshots
// in the same pipeline. On error nothing tells which snapshots landed; the
// caller retries the whole batch, which idempotence makes safe.
func (s *Store) Apply(ctx context.Context, snaps []Snapshot, marks ...Watermark) (applied []bool, err error) {
	groups := s.byBucket(snaps)
	calls := make([]scriptCall, 0, (len(snaps)+applyChunk-1)/applyChunk+len(groups)+len(marks))
	var parts [][]int // per apply call, the indexes in snaps of its products
	for bucket, idx := range groups {
		for chunk := range slices.Chunk(idx, applyChunk) {
			c, err := s.applyCall(bucket, snaps, chunk)
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
			parts = append(parts, chunk)
		}
	}
	nApply := len(calls)
	for _, m := range marks {
		c, err := s.watermarkCall(m)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	if err := s.run(ctx, calls); err != nil {
		return nil, err
	}
	applied = make([]bool, len(snaps))
	for i, c := range calls[:nApply] {
		res, err := c.cmd.Int64Slice()
		if err == nil && len(res) != len(parts[i]) {
			err = fmt.Errorf("%d answers", len(res))
		}
		if err != nil {
			return nil, fmt.Errorf("applying snapshots of %q and following: %w", snaps[parts[i][0]].ProductID, err)
		}
		for j, n := range res {
			applied[parts[i][j]] = n == 1
		}
	}
	for _, c := range calls[nApply:] {
		if err := c.cmd.Err(); err != nil {
			return nil, fmt.Errorf("writing watermark: %w", err)
		}
	}
	return applied, nil
}

// byBucket returns the indexes of snaps by bucket, in order within each (a
// product's snapshots stay in order: they are in one bucket). A single node
// has one bucket, 0.
func (s *Store) byBucket(snaps []Snapshot) [][]int {
	groups := make([][]int, s.nBuckets())
	if s.buckets == 0 {
		idx := make([]int, len(snaps))
		for i := range idx {
			idx[i] = i
		}
		groups[0] = idx
		return groups
	}
	for i := range snaps {
		b := bucketOf(snaps[i].ProductID, s.buckets)
		groups[b] = append(groups[b], i)
	}
	return groups
}

// applyChunk is the most products one apply script call takes. Larger
// calls cost less per product but hold Redis longer: 100 products of 20
// warehouses run in about 2 ms (make bench-projector), short enough for the
// readers waiting behind them.
const applyChunk = 100

// applyCall is one apply script call of the snapshots snaps[i], i in idx,
// all of bucket.
func (s *Store) applyCall(bucket int, snaps []Snapshot, idx []int) (scriptCall, error) {
	args := make([]any, 0, 3+5*len(idx))
	args = append(args, s.base, s.writeGen(), s.bucketTag(bucket))
	for _, i := range idx {
		sn := &snaps[i]
		if sn.ProductID == "" {
			// An empty hash tag would spread the product's keys over slots.
			return scriptCall{}, errors.New("applying snapshot: empty product id")
		}
		deleted, doc, low := "0", []byte(nil), []byte(nil)
		if sn.Deleted {
			deleted = "1"
		} else {
			doc = appendDoc(make([]byte, 0, 256+128*len(sn.Warehouses)), sn)
			low = appendLow(nil, sn)
		}
		args = append(args, sn.ProductID, sn.Position.Key(), deleted, doc, low)
	}
	return scriptCall{script: applyScript, keys: []string{s.pointer(bucket), s.nextPointer(bucket)}, args: args}, nil
}

func (s *Store) watermarkCall(m Watermark) (scriptCall, error) {
	at := m.AppliedAt
	if at.IsZero() {
		at = s.now()
	}
	doc, err := json.Marshal(watermarkDoc{
		Offset:     m.Offset,
		Position:   m.Position.String(),
		CommitTime: m.CommitTime.UTC(),
		AppliedAt:  at.UTC(),
		CaughtUp:   m.CaughtUp,
	})
	if err != nil {
		return scriptCall{}, fmt.Errorf("encoding watermark of %s/%d: %w", m.Topic, m.Partition, err)
	}
	b := keys{buckets: s.buckets}.watermarkBucket(m.Partition)
	return scriptCall{
		script: watermarkScript,
		keys:   []string{s.pointer(b), s.nextPointer(b)},
		args: []any{s.base, s.writeGen(), s.bucketTag(b), m.Topic,
			strconv.FormatInt(int64(m.Partition), 10), m.Offset, doc},
	}, nil
}

// run pipelines calls as EVALSHA. Calls that fail with NOSCRIPT (Redis
// restarted or its script cache was flushed) are rerun once, in order, after
// loading the scripts; the others already ran and are not repeated, so their
// results stay true.
func (s *Store) run(ctx context.Context, calls []scriptCall) error {
	pending := make([]int, len(calls))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		for _, i := range pending {
			c := &calls[i]
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		wait := s.queueWait(ctx, pipe)
		_, err := pipe.Exec(ctx)
		if err == nil {
			return s.checkWait(wait)
		}
		var missing []int
		for _, i := range pending {
			cerr := calls[i].cmd.Err()
			if redis.HasErrorPrefix(cerr, "NOGEN") {
				// The whole batch is retried after the rebuild; what ran
				// before the pointer vanished is replayed harmlessly.
				return fmt.Errorf("running pipelined scripts: %w", ErrNoGeneration)
			}
			if redis.HasErrorPrefix(cerr, "NOSCRIPT") {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 || attempt > 0 {
			return fmt.Errorf("running pipelined scripts: %w", err)
		}
		if err := s.LoadScripts(ctx); err != nil {
			return err
		}
		pending = missing
	}
	return nil
}

// GetJSON returns the served JSON document of a product, or ErrNotFound.
func (s *Store) GetJSON(ctx context.Context, id string) (json.RawMessage, error) {
	k, err := s.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.rdb.HGet(ctx, k.product(id), fieldDoc).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("reading product %q: %w", id, err)
	}
	return b, nil
}

// GetManyJSON returns the served documents of the products in ids, in one
// pipelined round trip: docs[i] is ids[i]'s document, nil when the store
// does not hold it. Aligned results let every caller walk ids and docs
// together instead of matching a packed list against the ids not found.
// Duplicated ids are read twice: fold them first.
func (s *Store) GetManyJSON(ctx context.Context, ids []string) ([]json.RawMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	k, err := s.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, k.product(id), fieldDoc)
	}
	// A missing product makes Exec return redis.Nil; each command says which.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading %d products: %w", len(ids), err)
	}
	docs := make([]json.RawMessage, len(ids))
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("reading product %q: %w", ids[i], err)
		default:
			docs[i] = b
		}
	}
	return docs, nil
}

// Get returns a product, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Product, error) {
	doc, err := s.GetJSON(ctx, id)
	if err != nil {
		return Product{}, err
	}
	var p Product
	if err := json.Unmarshal(doc, &p); err != nil {
		return Product{}, fmt.Errorf("decoding product %q: %w", id, err)
	}
	return p, nil
}

// GetMany returns the products in ids that the store holds, in the order of
// ids, and the ids it does not hold, in one round trip.
func (s *Store) GetMany(ctx context.Context, ids []string) ([]Product, []string, error) {
	docs, err := s.GetManyJSON(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Product, 0, len(ids))
	var notFound []string
	for i, doc := range docs {
		if doc == nil {
			notFound = append(notFound, ids[i])
			continue
		}
		var p Product
		if err := json.Unmarshal(doc, &p); err != nil {
			return nil, nil, fmt.Errorf("decoding product %q: %w", ids[i], err)
		}
		out = append(out, p)
	}
	return out, notFound, nil
}

// StoredPosition returns the position the store holds for a product: its
// snapshot's, or its tombstone's after a delete; ok is false when it has
// never seen the product.
func (s *Store) StoredPosition(ctx context.Context, id string) (p position.Position, deleted, ok bool, err error) {
	k, err := s.readKeys(ctx)
	if err != nil {
		return position.Position{}, false, false, err
	}
	pipe := s.rdb.Pipeline()
	pos := pipe.HGet(ctx, k.product(id), fieldPos)
	tomb := pipe.Get(ctx, k.tombstone(id))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return position.Position{}, false, false, fmt.Errorf("reading position of %q: %w", id, err)
	}
	key, deleted := pos.Val(), false
	if key == "" {
		key, deleted = tomb.Val(), true
	}
	if key == "" {
		return position.Position{}, false, false, nil
	}
	p, err = position.ParseKey(key)
	if err != nil {
		return position.Position{}, false, false, fmt.Errorf("reading position of %q: %w", id, err)
	}
	return p, deleted, true, nil
}

// Watermarks returns the applied watermarks of a topic, by partition.
func (s *Store) Watermarks(ctx context.Context, topic string) ([]Watermark, error) {
	k, err := s.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	// On a Cluster each bucket holds the watermarks of its partitions.
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, s.nBuckets())
	for b := range cmds {
		cmds[b] = pipe.HGetAll(ctx, k.watermark(topic, b))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading watermarks of %s: %w", topic, err)
	}
	all := map[string]string{}
	for _, c := range cmds {
		maps.Copy(all, c.Val())
	}
	out := make([]Watermark, 0, len(all))
	for field, v := range all {
		part, err := strconv.ParseInt(field, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("reading watermarks of %s: partition %q: %w", topic, field, err)
		}
		var d watermarkDoc
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			return nil, fmt.Errorf("reading watermark of %s/%d: %w", topic, part, err)
		}
		p, err := position.Parse(d.Position)
		if err != nil {
			return nil, fmt.Errorf("reading watermark of %s/%d: %w", topic, part, err)
		}
		out = append(out, Watermark{
			Topic: topic, Partition: int32(part), Offset: d.Offset,
			Position: p, CommitTime: d.CommitTime, AppliedAt: d.AppliedAt, CaughtUp: d.CaughtUp,
		})
	}
	slices.SortFunc(out, func(a, b Watermark) int { return int(a.Partition) - int(b.Partition) })
	return out, nil
}
