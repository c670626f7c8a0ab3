package stockstore

// What every read and write uses of generations: the active generation
// pointer, its cache for readers, pinned and generation-requiring stores,
// and what the guard and status read. The rebuild's side is in rebuild.go
// (the session), generation_switch.go (its steps) and generation_delete.go.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	return strconv.ParseInt(k.prefix[len(s.base)+len(genMark):len(k.prefix)-len(genEnd)], 10, 64)
}

// inGeneration returns a store over the same client and base prefix pinned
// to generation gen: it reads and writes that generation whatever the
// active one (Rebuild.Store).
func (s *Store) inGeneration(gen int64) *Store {
	c := *s
	c.pinned = gen
	return &c
}

// forget drops the cached generation so the next read asks Redis.
func (s *Store) forget() {
	s.gen.mu.Lock()
	s.gen.at = time.Time{}
	s.gen.mu.Unlock()
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
	// switch under way (Rebuild.Switch), or one a crashed rebuild left half
	// done, which leaves writers and readers on different generations for
	// good.
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
