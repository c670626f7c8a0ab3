package stockstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Generations let a rebuild write a complete new copy of the cache while the
// old one keeps serving, then switch readers and writers over at once. The
// pointer key <base>generation names the active generation; writes resolve
// it inside their Lua script (never stale), reads through a cache of
// GenerationCacheTTL (one round trip per read). A retired generation must
// therefore stay readable for longer than GenerationCacheTTL after the
// switch: RetireDelay.

// GenerationCacheTTL is how long a Store trusts the active generation it
// last read. It bounds how long a reader may keep reading a retired
// generation after a switch.
const GenerationCacheTTL = time.Second

// RetireDelay is the least time between switching generations and deleting
// the old one: readers' caches have expired by then.
const RetireDelay = 3 * GenerationCacheTTL

// ErrRebuildRunning is returned by LockRebuild when another rebuild holds
// the lock.
var ErrRebuildRunning = errors.New("another rebuild is running")

type genCache struct {
	ttl time.Duration
	mu  sync.Mutex
	gen int64
	at  time.Time // zero: never read
}

// ErrNoGeneration is returned by the writes of a store from
// RequireGeneration when Redis holds no active generation: it was flushed,
// or restarted without persistence, after the cache was built. Nothing was
// written; the cache must be rebuilt from the topic.
var ErrNoGeneration = errors.New("redis holds no active cache generation")

// writeGen is the generation argument of the write scripts: ” follows the
// active generation, inside the script; "!" follows it but refuses to write
// when there is none.
func (s *Store) writeGen() string {
	switch {
	case s.pinned >= 0:
		return strconv.FormatInt(s.pinned, 10)
	case s.requireGen:
		return "!"
	}
	return ""
}

// RequireGeneration returns a store over the same client and base prefix
// whose writes follow the active generation but fail with ErrNoGeneration,
// writing nothing, when Redis holds none. A running projector writes through
// it: without the pointer its writes would land in generation 0, an empty
// cache that readers would take for the whole one. A plain store writes
// generation 0 then, the layout from before generations.
func (s *Store) RequireGeneration() *Store {
	c := *s
	c.requireGen = true
	return &c
}

// readKeys returns the key names of the generation reads should use.
func (s *Store) readKeys(ctx context.Context) (keys, error) {
	if s.pinned >= 0 {
		return keys{prefix: genPrefix(s.base, s.pinned), buckets: s.buckets}, nil
	}
	c := s.gen
	c.mu.Lock()
	gen, at := c.gen, c.at
	c.mu.Unlock()
	if !at.IsZero() && s.now().Sub(at) < c.ttl {
		return keys{prefix: genPrefix(s.base, gen), buckets: s.buckets}, nil
	}
	gen, err := s.ActiveGeneration(ctx)
	if err != nil {
		return keys{}, err
	}
	c.mu.Lock()
	c.gen, c.at = gen, s.now()
	c.mu.Unlock()
	return keys{prefix: genPrefix(s.base, gen), buckets: s.buckets}, nil
}

// ActiveGeneration reads the active generation from Redis: 0 when none is
// set (a Redis never initialised, flushed, or holding the layout from
// before generations).
func (s *Store) ActiveGeneration(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.base+generationKey).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading active generation: %w", err)
	}
	g, err := strconv.ParseInt(v, 10, 64)
	if err != nil || g < 0 {
		return 0, fmt.Errorf("reading active generation: bad value %q", v)
	}
	return g, nil
}

// Generation returns the generation the store reads (the active one, as
// cached, unless pinned).
func (s *Store) Generation(ctx context.Context) (int64, error) {
	k, err := s.readKeys(ctx)
	if err != nil {
		return 0, err
	}
	if k.prefix == s.base {
		return 0, nil
	}
	return strconv.ParseInt(k.prefix[len(s.base)+1:len(k.prefix)-1], 10, 64)
}

// InGeneration returns a store over the same client and base prefix pinned
// to generation gen: it reads and writes that generation whatever the
// active one.
func (s *Store) InGeneration(gen int64) *Store {
	c := *s
	c.pinned = gen
	return &c
}

// InitGeneration makes sure a generation is active. On a Redis without the
// pointer (new or flushed) it activates a new generation and reports
// created; a caller that has already projected records (committed offsets)
// must then rebuild, since the cache lost them. On a Cluster it also sets
// the buckets' copies of the pointer that are missing.
func (s *Store) InitGeneration(ctx context.Context) (gen int64, created bool, err error) {
	gen, err = s.ActiveGeneration(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("initialising generation: %w", err)
	}
	if gen == 0 {
		// Numbers handed out and then not used are harmless; two
		// processes initialising at once agree through SETNX.
		if gen, err = s.rdb.Incr(ctx, s.base+generationLastKey).Result(); err != nil {
			return 0, false, fmt.Errorf("initialising generation: %w", err)
		}
		if created, err = s.rdb.SetNX(ctx, s.base+generationKey, gen, 0).Result(); err != nil {
			return 0, false, fmt.Errorf("initialising generation: %w", err)
		}
		if !created {
			if gen, err = s.ActiveGeneration(ctx); err != nil {
				return 0, false, fmt.Errorf("initialising generation: %w", err)
			}
		}
	}
	if s.buckets > 0 {
		pipe := s.rdb.Pipeline()
		for b := range s.buckets {
			pipe.SetNX(ctx, s.pointer(b), gen, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, false, fmt.Errorf("initialising generation: %w", err)
		}
	}
	s.forget()
	return gen, created, nil
}

// PointerState is what Redis holds of the generation pointer.
type PointerState int

const (
	// PointerActive: the pointer, and on a Cluster every bucket's copy,
	// equal to it.
	PointerActive PointerState = iota
	// PointerMissing: no pointer, or on a Cluster a copy missing: a new
	// Redis, or one that lost the cache (flushed, restarted without
	// persistence; on a Cluster, possibly one master only).
	PointerMissing
	// PointerSplit: on a Cluster, copies that differ from the pointer: a
	// switch under way (Activate), or one a crashed rebuild left half done,
	// which leaves writers and readers on different generations for good.
	PointerSplit
)

// Pointer reads the generation pointer and its copies in one round trip.
func (s *Store) Pointer(ctx context.Context) (PointerState, error) {
	pipe := s.rdb.Pipeline()
	cmds := []*redis.StringCmd{pipe.Get(ctx, s.base+generationKey)}
	for b := range s.buckets {
		cmds = append(cmds, pipe.Get(ctx, s.pointer(b)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("reading generation pointer: %w", err)
	}
	state := PointerActive
	for _, c := range cmds {
		switch {
		case errors.Is(c.Err(), redis.Nil):
			return PointerMissing, nil
		case c.Val() != cmds[0].Val():
			state = PointerSplit
		}
	}
	return state, nil
}

// Initialized reports whether a generation pointer exists (on a Cluster:
// the pointer and every bucket's copy): false on a new or flushed Redis,
// or a Cluster of which a master lost its data. It is the sentinel of a
// lost cache.
func (s *Store) Initialized(ctx context.Context) (bool, error) {
	st, err := s.Pointer(ctx)
	return st != PointerMissing, err
}

// RebuildLocked reports whether a rebuild holds the rebuild lock.
func (s *Store) RebuildLocked(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.base+rebuildLockKey).Result()
	if err != nil {
		return false, fmt.Errorf("checking rebuild lock: %w", err)
	}
	return n == 1, nil
}

// NewGeneration hands out a generation number never used under this base
// prefix (until a flush). Nothing reads it until Activate.
func (s *Store) NewGeneration(ctx context.Context) (int64, error) {
	for {
		g, err := s.rdb.Incr(ctx, s.base+generationLastKey).Result()
		if err != nil {
			return 0, fmt.Errorf("allocating generation: %w", err)
		}
		// After a flush the counter restarts while an old pointer cannot
		// exist; still, never hand out the active one.
		active, err := s.ActiveGeneration(ctx)
		if err != nil {
			return 0, err
		}
		if g != active {
			return g, nil
		}
	}
}

// The rebuild lock and the next-generation pointer are extended and removed
// only by whoever they name: KEYS[1] the key, ARGV[1] the value it must
// hold, ARGV[2] (expireIfHolds) the new TTL in ms. They return 1 when done, 0 when the key
// holds something else or nothing.
const (
	expireIfHolds = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`
	deleteIfHolds = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
)

// ErrNextLost is returned by ExtendNext when the next-generation pointer
// is gone (expired under a stalled rebuild, or lost with Redis's data):
// writes may have stopped reaching the generation, which must then not
// be switched to.
var ErrNextLost = errors.New("next-generation pointer lost")

// SetNext names gen as the generation a rebuild is about to switch to,
// for ttl: from the moment it returns, every write that follows the active
// generation is applied to gen too (see applyScript). A rebuild that then
// replays the topic up to offsets read after SetNext has everything the
// active generation has, and can switch without readers seeing any
// product older. The pointer expires by itself after a crashed rebuild.
func (s *Store) SetNext(ctx context.Context, gen int64, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	for b := range s.nBuckets() {
		pipe.Set(ctx, s.nextPointer(b), gen, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("setting next generation %d: %w", gen, err)
	}
	return nil
}

// ExtendNext pushes the expiry of the next-generation pointer to ttl from
// now, if it still names gen, and fails with ErrNextLost otherwise.
func (s *Store) ExtendNext(ctx context.Context, gen int64, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, s.nBuckets())
	for b := range cmds {
		cmds[b] = pipe.Eval(ctx, expireIfHolds,
			[]string{s.nextPointer(b)}, gen, ttl.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("extending next generation %d: %w", gen, err)
	}
	for b, c := range cmds {
		if n, _ := c.Int(); n == 0 {
			return fmt.Errorf("extending next generation %d (pointer %s): %w", gen, s.nextPointer(b), ErrNextLost)
		}
	}
	return nil
}

// ClearNext removes the next-generation pointer, if it names gen: writes
// stop going to gen too (a rebuild that gives up).
func (s *Store) ClearNext(ctx context.Context, gen int64) error {
	pipe := s.rdb.Pipeline()
	for b := range s.nBuckets() {
		pipe.Eval(ctx, deleteIfHolds,
			[]string{s.nextPointer(b)}, gen)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clearing next generation %d: %w", gen, err)
	}
	return nil
}

// Activate makes gen the active generation and returns the one it
// replaced (0 when none was set). Writers follow at once; readers within
// GenerationCacheTTL. On a Cluster the buckets' copies are switched first,
// one by one (each bucket's writes follow its copy atomically), then the
// pointer readers use.
func (s *Store) Activate(ctx context.Context, gen int64) (prev int64, err error) {
	if s.buckets > 0 {
		pipe := s.rdb.Pipeline()
		for b := range s.buckets {
			pipe.Set(ctx, s.pointer(b), gen, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("activating generation %d: %w", gen, err)
		}
	}
	old, err := s.rdb.SetArgs(ctx, s.base+generationKey, gen, redis.SetArgs{Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		old = "0"
	case err != nil:
		return 0, fmt.Errorf("activating generation %d: %w", gen, err)
	}
	prev, err = strconv.ParseInt(old, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("activating generation %d: previous %q: %w", gen, old, err)
	}
	s.forget()
	// Writes already go to gen alone (a mirror naming the active
	// generation is skipped): the pointer is only tidied away, and expires
	// by itself if this fails. The switch happened either way.
	_ = s.ClearNext(ctx, gen)
	return prev, nil
}

// forget drops the cached generation so the next read asks Redis.
func (s *Store) forget() {
	s.gen.mu.Lock()
	s.gen.at = time.Time{}
	s.gen.mu.Unlock()
}

// DeleteGeneration deletes every data key of generation gen (never the
// pointer), in chunks, and returns how many it deleted. It refuses the
// active generation.
func (s *Store) DeleteGeneration(ctx context.Context, gen int64) (int, error) {
	active, err := s.ActiveGeneration(ctx)
	if err != nil {
		return 0, err
	}
	if gen == active {
		return 0, fmt.Errorf("deleting generation %d: it is the active one", gen)
	}
	p := globEscape(genPrefix(s.base, gen))
	patterns := []string{p + "*"}
	if gen == 0 {
		patterns = gen0Patterns(p)
	}
	n, err := s.deleteMatching(ctx, patterns)
	if err != nil {
		return n, fmt.Errorf("deleting generation %d: %w", gen, err)
	}
	return n, nil
}

// gen0Patterns match the data keys of generation 0, which shares the base
// prefix p (glob-escaped) with the pointer and the other generations.
func gen0Patterns(p string) []string {
	return []string{p + productKind + "*", p + tombstoneKind + "*", p + watermarkKind + "*",
		p + lowStockKind + "*", p + changesKind, p + changesKind + ":*"}
}

// DeleteAllGenerations deletes the data keys of every generation and what
// is left of the pointer, leaving the generation counter, the rebuild lock
// and heartbeats. It is for a cache that lost its pointer (ErrNoGeneration),
// or, on a Cluster, whose pointer copies a crashed rebuild left split:
// nothing trustworthy serves from it then, and whatever survived (a flush
// racing writes, a deleted pointer) must neither leak nor mix into the
// generation rebuilt next, which may reuse a number once the counter is
// gone too. It refuses while a generation is active (PointerActive).
func (s *Store) DeleteAllGenerations(ctx context.Context) (int, error) {
	st, err := s.Pointer(ctx)
	if err != nil {
		return 0, err
	}
	if st == PointerActive {
		return 0, errors.New("deleting every generation: a generation is active")
	}
	// On a Cluster some buckets' copies of the pointer may have survived:
	// without them, every write waits for the rebuild's switch.
	ptrs := []string{s.base + generationKey}
	for b := range s.buckets {
		ptrs = append(ptrs, s.pointer(b))
	}
	if err := s.unlink(ctx, ptrs); err != nil {
		return 0, fmt.Errorf("deleting every generation: %w", err)
	}
	p := globEscape(s.base)
	// g[0-9]* is every generation n > 0 and not "generation".
	n, err := s.deleteMatching(ctx, append(gen0Patterns(p), p+"g[0-9]*"))
	if err != nil {
		return n, fmt.Errorf("deleting every generation: %w", err)
	}
	return n, nil
}

// deleteMatching unlinks every key matching one of patterns, in chunks,
// and returns how many it unlinked.
func (s *Store) deleteMatching(ctx context.Context, patterns []string) (int, error) {
	n := 0
	for _, pat := range patterns {
		batch := make([]string, 0, 1000)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := s.unlink(ctx, batch); err != nil {
				return err
			}
			n += len(batch)
			batch = batch[:0]
			return nil
		}
		err := s.scan(ctx, pat, func(k string) error {
			batch = append(batch, k)
			if len(batch) == cap(batch) {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// scan calls fn for every key matching pattern, on every master of a
// Cluster. A key may come twice (SCAN's guarantee); deleting is idempotent.
func (s *Store) scan(ctx context.Context, pattern string, fn func(string) error) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex // ForEachMaster runs on the masters concurrently
		locked := func(k string) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(k)
		}
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return scanNode(ctx, c, pattern, locked)
		})
	}
	return scanNode(ctx, s.rdb, pattern, fn)
}

func scanNode(ctx context.Context, c redis.Cmdable, pattern string, fn func(string) error) error {
	iter := c.Scan(ctx, 0, pattern, 2000).Iterator()
	for iter.Next(ctx) {
		if err := fn(iter.Val()); err != nil {
			return err
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scanning %s: %w", pattern, err)
	}
	return nil
}

// unlink deletes keys: one command on a single node, one per key (keys of
// other slots) pipelined by node on a Cluster.
func (s *Store) unlink(ctx context.Context, keys []string) error {
	if _, ok := s.rdb.(*redis.ClusterClient); !ok {
		if err := s.rdb.Unlink(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("unlinking %d keys: %w", len(keys), err)
		}
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, k := range keys {
		pipe.Unlink(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("unlinking %d keys: %w", len(keys), err)
	}
	return nil
}

// globEscape escapes the glob characters of a literal key prefix.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LockRebuild takes the rebuild lock for ttl (one rebuild at a time per base
// prefix); unlock releases it. ErrRebuildRunning when it is held.
func (s *Store) LockRebuild(ctx context.Context, owner string, ttl time.Duration) (unlock func(context.Context), err error) {
	ok, err := s.rdb.SetNX(ctx, s.base+rebuildLockKey, owner, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("taking rebuild lock: %w", err)
	}
	if !ok {
		holder, _ := s.rdb.Get(ctx, s.base+rebuildLockKey).Result()
		return nil, fmt.Errorf("%w (held by %q)", ErrRebuildRunning, holder)
	}
	return func(ctx context.Context) {
		// Only the owner's lock: compare and delete.
		_ = s.rdb.Eval(ctx, deleteIfHolds, []string{s.base + rebuildLockKey}, owner).Err()
	}, nil
}

// ErrRebuildLockLost is returned by ExtendRebuildLock when owner no longer
// holds the rebuild lock: it expired under a stalled rebuild, or Redis lost
// it (flushed, restarted without persistence) together with what the
// rebuild had written. The rebuild must stop without switching.
var ErrRebuildLockLost = errors.New("rebuild lock lost")

// ExtendRebuildLock pushes the rebuild lock's expiry to ttl from now, if
// owner still holds it; a rebuild calls it while it runs so that a crashed
// rebuild frees the lock soon, and once more right before it switches.
func (s *Store) ExtendRebuildLock(ctx context.Context, owner string, ttl time.Duration) error {
	n, err := s.rdb.Eval(ctx, expireIfHolds,
		[]string{s.base + rebuildLockKey}, owner, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("extending rebuild lock: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("extending rebuild lock of %q: %w", owner, ErrRebuildLockLost)
	}
	return nil
}
