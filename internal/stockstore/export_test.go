package stockstore

import (
	"context"
	"time"
)

// The steps a Rebuild runs, opened to this package's tests so that each can
// be tested on its own, in orders the session never uses (a pointer
// extended after it expired, a lock extended by another owner).

func (s *Store) NewGeneration(ctx context.Context) (int64, error) { return s.newGeneration(ctx) }
func (s *Store) InGeneration(gen int64) *Store                    { return s.inGeneration(gen) }
func (s *Store) SetNext(ctx context.Context, gen int64, ttl time.Duration) error {
	return s.setNext(ctx, gen, ttl)
}

func (s *Store) ExtendNext(ctx context.Context, gen int64, ttl time.Duration) error {
	return s.extendNext(ctx, gen, ttl)
}
func (s *Store) ClearNext(ctx context.Context, gen int64) error { return s.clearNext(ctx, gen) }
func (s *Store) Activate(ctx context.Context, gen int64) (int64, error) {
	return s.activate(ctx, gen)
}

func (s *Store) DeleteGeneration(ctx context.Context, gen int64) (int, error) {
	return s.deleteGeneration(ctx, gen)
}
func (s *Store) DeleteAllGenerations(ctx context.Context) (int, error) {
	return s.deleteAllGenerations(ctx)
}

func (s *Store) LockRebuild(ctx context.Context, owner string, ttl time.Duration) (func(context.Context), error) {
	return s.lockRebuild(ctx, owner, ttl)
}

func (s *Store) ExtendRebuildLock(ctx context.Context, owner string, ttl time.Duration) error {
	return s.extendRebuildLock(ctx, owner, ttl)
}

var (
	ErrNextLost        = errNextLost
	ErrRebuildLockLost = errRebuildLockLost
)
