package stockstore

// Deleting generations: the old one after a switch, the new one of a
// rebuild that gave up, and every one of a lost cache. Keys are found with
// SCAN (on every master of a Cluster) and unlinked in chunks, so that a
// large generation never blocks Redis in one command.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// deleteGeneration deletes every data key of generation gen (never the
// pointer), in chunks, and returns how many it deleted. It refuses the
// active generation.
func (s *Store) deleteGeneration(ctx context.Context, gen int64) (int, error) {
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

// deleteAllGenerations deletes the data keys of every generation and what
// is left of the pointer, leaving the generation counter, the rebuild lock
// and heartbeats. It is for a cache that lost its pointer (ErrNoGeneration),
// or, on a Cluster, whose pointer copies a crashed rebuild left split:
// nothing trustworthy serves from it then, and whatever survived (a flush
// racing writes, a deleted pointer) must neither leak nor mix into the
// generation rebuilt next, which may reuse a number once the counter is
// gone too. It refuses while a generation is active (PointerActive).
func (s *Store) deleteAllGenerations(ctx context.Context) (int, error) {
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
	n, err := s.deleteMatching(ctx, append(gen0Patterns(p), p+genMark+"[0-9]*"))
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
