package redisprefix

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Usage is the memory Redis reports for the keys under a prefix, by kind of
// key (the word before the key's first id: "product", "lowstock",
// "changes", ...).
type Usage struct {
	Keys  int
	Bytes int64
	Kinds map[string]int64
}

// MemoryUsage sums MEMORY USAGE (every element counted: SAMPLES 0) of each
// key under prefix. It is what the keys hold, not the allocator's overhead
// around them, and unlike used_memory it is not moved by the other keys of
// a shared Redis.
func MemoryUsage(ctx context.Context, rdb redis.UniversalClient, prefix string) (Usage, error) {
	u := Usage{Kinds: map[string]int64{}}
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	measure := func() error {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i, c := range cmds {
			n, err := c.Result()
			if err == redis.Nil {
				continue // removed since the scan
			}
			if err != nil {
				return err
			}
			u.Keys++
			u.Bytes += n
			u.Kinds[kindOf(strings.TrimPrefix(keys[i], prefix))] += n
		}
		keys = keys[:0]
		return nil
	}
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			if err := measure(); err != nil {
				return u, fmt.Errorf("measuring keys %s*: %w", prefix, err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return u, fmt.Errorf("scanning keys %s*: %w", prefix, err)
	}
	if err := measure(); err != nil {
		return u, fmt.Errorf("measuring keys %s*: %w", prefix, err)
	}
	return u, nil
}

// kindOf names a key by its first word after the prefix, skipping a
// generation's "g<n>:": product, lowstock, changes, watermark, ...
func kindOf(rest string) string {
	if len(rest) > 1 && rest[0] == 'g' && rest[1] >= '0' && rest[1] <= '9' {
		if _, after, ok := strings.Cut(rest, ":"); ok {
			rest = after
		}
	}
	word, _, _ := strings.Cut(rest, ":")
	return strings.TrimRight(word, "{")
}
