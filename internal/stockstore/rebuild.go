package stockstore

// The rebuild session: the one owner of the generation-switch protocol.
// Its steps (generation_switch.go) are unexported, so the only way to
// rebuild is Begin, write, Mirror, Switch, Retire, Close, in that order.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// RetireDelay is the least time between switching generations and deleting
// the old one: readers' caches have expired by then.
const RetireDelay = 3 * GenerationCacheTTL

// rebuildLockTTL is how long the rebuild lock and the next-generation
// pointer outlive a rebuild that stopped extending them (crashed): another
// rebuild may start, and live writes stop mirroring, that much later.
const rebuildLockTTL = 30 * time.Second

// closeTimeout bounds Close: deleting a generation a rebuild gave up on is
// a SCAN of the keyspace.
const closeTimeout = time.Minute

// ErrRebuildRunning is returned by BeginRebuild and BeginLostRebuild when
// another rebuild holds the lock.
var ErrRebuildRunning = errors.New("another rebuild is running")

// ErrGenerationActive is returned by BeginLostRebuild when, once it holds
// the rebuild lock, a generation is active again: another process rebuilt
// the cache meanwhile (or a projector starting on an empty Redis activated
// one), and there is nothing to rebuild.
var ErrGenerationActive = errors.New("a cache generation is active again")

// Rebuild is one rebuild of the cache into a new generation while the
// active one keeps serving. It holds the rebuild lock from BeginRebuild to
// Close and keeps it alive in a goroutine of its own; a lock (or, after
// Mirror, a next-generation pointer) it finds lost cancels the context
// BeginRebuild returned, and Switch then refuses: another rebuild may be
// running, or Redis lost what this one wrote.
//
// The caller writes the new generation through Store, calls Mirror once
// what is left to write is small, writes what the source held at that
// moment, then Switch, Retire and Close. A session closed before Switch
// leaves nothing behind.
type Rebuild struct {
	store *Store // follows the active generation
	gen   int64
	owner string
	lost  bool
	log   *slog.Logger

	ctx    context.Context // ends when the lock is lost, or the caller's ends
	cancel context.CancelCauseFunc
	unlock func(context.Context)

	stopKeeper context.CancelFunc
	keeperDone chan struct{}

	// mu keeps the keeper's extension of the next pointer from racing the
	// switch and the abort, which clear the pointer; and its log lines from
	// the logger BeginRebuild names the generation in.
	mu       sync.Mutex
	mirrored bool // the next pointer names gen and the keeper extends it

	switched bool
	prev     int64 // the generation Switch replaced
	closed   bool
}

// BeginRebuild takes the rebuild lock (ErrRebuildRunning when another
// rebuild holds it) and opens a new generation. The work of the rebuild
// runs under the returned context, which ends if the lock is lost. s must
// follow the active generation.
func (s *Store) BeginRebuild(ctx context.Context, log *slog.Logger) (*Rebuild, context.Context, error) {
	return s.beginRebuild(ctx, log, false)
}

// BeginLostRebuild is BeginRebuild for a cache that lost its active
// generation (Redis flushed or restarted without persistence; on a Cluster
// also pointer copies a crashed rebuild left split): under the lock it
// checks the loss again (ErrGenerationActive when a generation is active:
// another process rebuilt), then deletes whatever data survived in any
// generation, since nothing serves from it now.
func (s *Store) BeginLostRebuild(ctx context.Context, log *slog.Logger) (*Rebuild, context.Context, error) {
	return s.beginRebuild(ctx, log, true)
}

func (s *Store) beginRebuild(ctx context.Context, log *slog.Logger, lost bool) (*Rebuild, context.Context, error) {
	if s.pinned >= 0 {
		return nil, nil, fmt.Errorf("beginning rebuild: the store is pinned to generation %d", s.pinned)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Rebuild{store: s, owner: randomID(), lost: lost, log: log, keeperDone: make(chan struct{})}
	unlock, err := s.lockRebuild(ctx, r.owner, rebuildLockTTL)
	if err != nil {
		return nil, nil, err
	}
	r.unlock = unlock
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	keeperCtx, stop := context.WithCancel(r.ctx)
	r.stopKeeper = stop
	go r.keep(keeperCtx)

	if err := r.open(r.ctx); err != nil {
		r.release(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	r.mu.Lock()
	r.log = log.With("generation", r.gen)
	r.mu.Unlock()
	return r, r.ctx, nil
}

// open allocates the new generation, after clearing what a lost cache left.
func (r *Rebuild) open(ctx context.Context) error {
	if r.lost {
		// Under the lock no other rebuild can activate a generation; a
		// projector starting on an empty Redis without committed offsets
		// could, and that generation must not be cleared.
		ps, err := r.store.Pointer(ctx)
		if err != nil {
			return err
		}
		if ps == PointerActive {
			return ErrGenerationActive
		}
		n, err := r.store.deleteAllGenerations(ctx)
		if err != nil {
			return err
		}
		r.log.Info("deleted what survived of the lost cache", "keys", n)
	}
	gen, err := r.store.newGeneration(ctx)
	if err != nil {
		return err
	}
	r.gen = gen
	return nil
}

// keep extends the lock, and the next pointer once Mirror set it, until
// ctx ends; a lost one ends the session's context with the reason.
func (r *Rebuild) keep(ctx context.Context) {
	defer close(r.keeperDone)
	t := time.NewTicker(rebuildLockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.store.extendRebuildLock(ctx, r.owner, rebuildLockTTL)
		r.mu.Lock()
		if err == nil && r.mirrored {
			err = r.store.extendNext(ctx, r.gen, rebuildLockTTL)
		}
		log := r.log
		r.mu.Unlock()
		switch {
		case errors.Is(err, errRebuildLockLost), errors.Is(err, errNextLost):
			log.Error("rebuild lock or next-generation pointer lost; stopping without switching", "error", err)
			r.cancel(err)
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("extending rebuild lock", "error", err)
		}
	}
}

// Generation is the number of the new generation.
func (r *Rebuild) Generation() int64 { return r.gen }

// Store writes and reads the new generation, whatever the active one.
func (r *Rebuild) Store() *Store { return r.store.inGeneration(r.gen) }

// Mirror has every write that follows the active generation (the live
// projector's) reach the new generation too, from the moment it returns,
// position-checked on its own. Whatever the caller then writes up to what
// the source held after Mirror returned, the new generation holds all the
// active one does, and Switch shows no product older than before. Until
// Mirror, live writes cost nothing extra, so callers first write most of
// the generation, then Mirror for the last stretch.
func (r *Rebuild) Mirror(ctx context.Context) error {
	if err := r.store.setNext(ctx, r.gen, rebuildLockTTL); err != nil {
		return err
	}
	r.mu.Lock()
	r.mirrored = true
	r.mu.Unlock()
	return nil
}

// Switch makes the new generation the active one and returns the one it
// replaced (0 when none was). Writers follow at once, readers within
// GenerationCacheTTL. It refuses, changing nothing, without Mirror first,
// when the session's context ended (the lock or the pointer was lost), or
// when Redis no longer holds this session's lock or next pointer: live
// writes may have missed the generation, or what it holds may be gone.
func (r *Rebuild) Switch(ctx context.Context) (prev int64, err error) {
	switch {
	case r.switched:
		return 0, errors.New("switching generations: already switched")
	case !r.mirrored:
		return 0, errors.New("switching generations: live writes are not mirrored into the new generation (Mirror)")
	case r.ctx.Err() != nil:
		return 0, context.Cause(r.ctx) // the keeper's reason, if it gave up
	}
	if err := r.store.extendRebuildLock(ctx, r.owner, rebuildLockTTL); err != nil {
		return 0, err
	}
	if err := r.store.extendNext(ctx, r.gen, rebuildLockTTL); err != nil {
		return 0, err
	}
	// activate clears the pointer: the keeper must not find it lost.
	r.stopMirroring()
	prev, err = r.store.activate(ctx, r.gen)
	if err != nil {
		return 0, err
	}
	r.switched, r.prev = true, prev
	return prev, nil
}

func (r *Rebuild) stopMirroring() {
	r.mu.Lock()
	r.mirrored = false
	r.mu.Unlock()
}

// Retire waits delay (at least RetireDelay, for readers whose cached
// generation has not expired), then deletes the generation Switch
// replaced. After a loss that is generation 0, which nothing wrote
// (writes were refused, survivors deleted): nothing to retire then.
func (r *Rebuild) Retire(ctx context.Context, delay time.Duration) error {
	if !r.switched {
		return errors.New("retiring the old generation: no switch")
	}
	if r.prev == r.gen || (r.lost && r.prev == 0) {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(max(delay, RetireDelay)):
	}
	n, err := r.store.deleteGeneration(ctx, r.prev)
	if err != nil {
		return err
	}
	r.log.Info("deleted old generation", "previous", r.prev, "keys", n)
	return nil
}

// Close ends the session: one that did not switch first leaves nothing
// behind (live writes stop going to its generation, and what it wrote is
// deleted); then the keeper stops and the lock is released. It runs on ctx
// even if ctx has ended, under a timeout of its own.
func (r *Rebuild) Close(ctx context.Context) {
	if r.closed {
		return
	}
	r.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if !r.switched {
		r.abort(ctx)
	}
	r.release(ctx)
}

// abort deletes the new generation and its next pointer, under the lock:
// after a flush the generation numbers start over, and gen may by now be
// another rebuild's.
func (r *Rebuild) abort(ctx context.Context) {
	r.stopMirroring()
	if err := r.store.extendRebuildLock(ctx, r.owner, rebuildLockTTL); err != nil {
		r.log.Warn("leaving the generation of a rebuild that gave up: the rebuild lock is not ours", "error", err)
		return
	}
	if err := r.store.clearNext(ctx, r.gen); err != nil {
		r.log.Warn("clearing next generation of a rebuild that gave up", "error", err)
	}
	if n, err := r.store.deleteGeneration(ctx, r.gen); err != nil {
		r.log.Warn("deleting the generation of a rebuild that gave up", "error", err)
	} else if n > 0 {
		r.log.Info("deleted the generation of a rebuild that gave up", "keys", n)
	}
}

// release stops the keeper, waits for it, and gives the lock up.
func (r *Rebuild) release(ctx context.Context) {
	r.stopKeeper()
	<-r.keeperDone
	r.cancel(nil)
	r.unlock(ctx)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
