package stockstore

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

// writeGen is the generation argument of the write scripts: ” follows the
// active generation, inside the script.
func (s *Store) writeGen() string {
	if s.pinned >= 0 {
		return strconv.FormatInt(s.pinned, 10)
	}
	return ""
}

// readKeys returns the key names of the generation reads should use.
func (s *Store) readKeys(ctx context.Context) (keys, error) {
	if s.pinned >= 0 {
		return keys{prefix: genPrefix(s.base, s.pinned)}, nil
	}
	c := s.gen
	c.mu.Lock()
	gen, at := c.gen, c.at
	c.mu.Unlock()
	if !at.IsZero() && s.now().Sub(at) < c.ttl {
		return keys{prefix: genPrefix(s.base, gen)}, nil
	}
	gen, err := s.ActiveGeneration(ctx)
	if err != nil {
		return keys{}, err
	}
	c.mu.Lock()
	c.gen, c.at = gen, s.now()
	c.mu.Unlock()
	return keys{prefix: genPrefix(s.base, gen)}, nil
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
// must then rebuild, since the cache lost them.
func (s *Store) InitGeneration(ctx context.Context) (gen int64, created bool, err error) {
	res, err := s.runScript(ctx, initGenerationScript, s.base)
	if err != nil {
		return 0, false, fmt.Errorf("initialising generation: %w", err)
	}
	vals, _ := res.([]any)
	if len(vals) != 2 {
		return 0, false, fmt.Errorf("initialising generation: unexpected answer %v", res)
	}
	gen, err = strconv.ParseInt(fmt.Sprint(vals[0]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("initialising generation: %w", err)
	}
	s.forget()
	return gen, vals[1] == int64(1), nil
}

// Initialized reports whether a generation pointer exists: false on a
// flushed or new Redis. It is the sentinel the projector checks at start.
func (s *Store) Initialized(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.base+generationKey).Result()
	if err != nil {
		return false, fmt.Errorf("checking generation pointer: %w", err)
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

// Activate makes gen the active generation in one atomic step and returns
// the one it replaced (0 when none was set). Writers follow at once; readers
// within GenerationCacheTTL.
func (s *Store) Activate(ctx context.Context, gen int64) (prev int64, err error) {
	res, err := s.runScript(ctx, activateScript, s.base, strconv.FormatInt(gen, 10))
	if err != nil {
		return 0, fmt.Errorf("activating generation %d: %w", gen, err)
	}
	prev, err = strconv.ParseInt(fmt.Sprint(res), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("activating generation %d: %w", gen, err)
	}
	s.forget()
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
	p := genPrefix(s.base, gen)
	patterns := []string{p + "*"}
	if gen == 0 {
		// Generation 0 shares the base prefix with the pointer and the other
		// generations: delete its kinds only.
		patterns = []string{p + productKind + "*", p + tombstoneKind + "*", p + watermarkKind + "*",
			p + lowStockKind + "*", p + changesKind, p + changesKind + ":*"}
	}
	n := 0
	for _, pat := range patterns {
		iter := s.rdb.Scan(ctx, 0, pat, 2000).Iterator()
		batch := make([]string, 0, 1000)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := s.rdb.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("deleting generation %d: %w", gen, err)
			}
			n += len(batch)
			batch = batch[:0]
			return nil
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return n, err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return n, fmt.Errorf("scanning generation %d: %w", gen, err)
		}
		if err := flush(); err != nil {
			return n, err
		}
	}
	return n, nil
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
		_ = s.rdb.Eval(ctx, `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
			[]string{s.base + rebuildLockKey}, owner).Err()
	}, nil
}

// runScript runs one script, loading it when Redis lost its cache.
func (s *Store) runScript(ctx context.Context, sc *redis.Script, args ...any) (any, error) {
	return sc.Run(ctx, s.rdb, nil, args...).Result()
}

// ExtendRebuildLock pushes the rebuild lock's expiry to ttl from now, if
// owner still holds it; a rebuild calls it while it runs so that a crashed
// rebuild frees the lock soon.
func (s *Store) ExtendRebuildLock(ctx context.Context, owner string, ttl time.Duration) error {
	err := s.rdb.Eval(ctx, `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`,
		[]string{s.base + rebuildLockKey}, owner, ttl.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("extending rebuild lock: %w", err)
	}
	return nil
}
