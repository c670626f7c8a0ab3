// Package redisprefix removes what a benchmark wrote to Redis: every
// benchmark writes under a key prefix of its own, so that it never touches
// the keys of a running `make run` or a test, and deletes the prefix at the
// end. It must never delete anything but keys under the prefix it is given.
package redisprefix

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Delete removes every key under prefix and returns how many it removed.
// UNLINK frees the memory in the background, so a large prefix does not
// block Redis for the next benchmark.
func Delete(ctx context.Context, rdb redis.UniversalClient, prefix string) (int, error) {
	if prefix == "" {
		// An empty prefix would match every key of the database.
		return 0, errors.New("deleting keys: empty prefix")
	}
	var n int
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	batch := make([]string, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rdb.Unlink(ctx, batch...).Err()
		n += len(batch)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := errors.Join(iter.Err(), flush()); err != nil {
		return n, fmt.Errorf("deleting keys %s*: %w", prefix, err)
	}
	return n, nil
}
