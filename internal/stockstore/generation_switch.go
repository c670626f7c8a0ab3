package stockstore

// The steps of a rebuild, in the order Rebuild runs them: the rebuild lock,
// a new generation number, the next-generation pointer that live writers
// mirror into, and the switch. Only the session (rebuild.go) calls them: in
// another order they lose writes or serve a half-built cache.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The rebuild lock and the next-generation pointer are extended and removed
// only by whoever they name: KEYS[1] the key, ARGV[1] the value it must
// hold, ARGV[2] (expireIfHolds) the new TTL in ms. They return 1 when done,
// 0 when the key holds something else or nothing.
const (
	expireIfHolds = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`
	deleteIfHolds = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
)

// errRebuildLockLost is returned by extendRebuildLock when owner no longer
// holds the rebuild lock: it expired under a stalled rebuild, or Redis lost
// it (flushed, restarted without persistence) together with what the
// rebuild had written. The rebuild must stop without switching.
var errRebuildLockLost = errors.New("rebuild lock lost")

// errNextLost is returned by extendNext when the next-generation pointer
// is gone (expired under a stalled rebuild, or lost with Redis's data):
// writes may have stopped reaching the generation, which must then not
// be switched to.
var errNextLost = errors.New("next-generation pointer lost")

// lockRebuild takes the rebuild lock for ttl (one rebuild at a time per
// base prefix); unlock releases it. ErrRebuildRunning when it is held.
func (s *Store) lockRebuild(ctx context.Context, owner string, ttl time.Duration) (unlock func(context.Context), err error) {
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

// extendRebuildLock pushes the rebuild lock's expiry to ttl from now, if
// owner still holds it; a rebuild calls it while it runs so that a crashed
// rebuild frees the lock soon, and once more right before it switches.
func (s *Store) extendRebuildLock(ctx context.Context, owner string, ttl time.Duration) error {
	n, err := s.rdb.Eval(ctx, expireIfHolds,
		[]string{s.base + rebuildLockKey}, owner, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("extending rebuild lock: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("extending rebuild lock of %q: %w", owner, errRebuildLockLost)
	}
	return nil
}

// newGeneration hands out a generation number never used under this base
// prefix (until a flush). Nothing reads it until activate.
func (s *Store) newGeneration(ctx context.Context) (int64, error) {
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

// setNext names gen as the generation a rebuild is about to switch to,
// for ttl: from the moment it returns, every write that follows the active
// generation is applied to gen too (see applyScript). A rebuild that then
// replays the topic up to offsets read after setNext has everything the
// active generation has, and can switch without readers seeing any
// product older. The pointer expires by itself after a crashed rebuild.
func (s *Store) setNext(ctx context.Context, gen int64, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	for b := range s.nBuckets() {
		pipe.Set(ctx, s.nextPointer(b), gen, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("setting next generation %d: %w", gen, err)
	}
	return nil
}

// extendNext pushes the expiry of the next-generation pointer to ttl from
// now, if it still names gen, and fails with errNextLost otherwise.
func (s *Store) extendNext(ctx context.Context, gen int64, ttl time.Duration) error {
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
			return fmt.Errorf("extending next generation %d (pointer %s): %w", gen, s.nextPointer(b), errNextLost)
		}
	}
	return nil
}

// clearNext removes the next-generation pointer, if it names gen: writes
// stop going to gen too (a rebuild that gives up).
func (s *Store) clearNext(ctx context.Context, gen int64) error {
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

// activate makes gen the active generation and returns the one it
// replaced (0 when none was set). Writers follow at once; readers within
// GenerationCacheTTL. On a Cluster the buckets' copies are switched first,
// one by one (each bucket's writes follow its copy atomically), then the
// pointer readers use.
func (s *Store) activate(ctx context.Context, gen int64) (prev int64, err error) {
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
	_ = s.clearNext(ctx, gen)
	return prev, nil
}
