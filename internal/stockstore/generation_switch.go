package stockstore

// The rebuild's side of generations: the next-generation pointer that live
// writers mirror into, the switch, the rebuild lock and deleting a generation
// (generation.go holds what readers and writers use every call).

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
