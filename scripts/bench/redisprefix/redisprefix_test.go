package redisprefix

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/testenv"
)

// A benchmark's clean-up removes every key under its prefix, more than one
// SCAN batch of them, and nothing else: not a key that merely starts the
// same way without the prefix's separator.
func TestDeleteRemovesOnlyThePrefix(t *testing.T) {
	ctx := t.Context()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (start it with scripts/stack.sh): %v", testenv.RedisAddr(), err)
	}
	name := testenv.Name(t, "redisprefix")
	prefix, neighbour := name+":", name+"_other"
	// t.Context is cancelled before cleanups run.
	t.Cleanup(func() { rdb.Del(context.Background(), neighbour) })

	const keys = 2500 // more than one batch of 1000
	pipe := rdb.Pipeline()
	for i := range keys {
		pipe.Set(ctx, fmt.Sprintf("%s%d", prefix, i), "x", 0)
	}
	pipe.Set(ctx, neighbour, "keep", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	n, err := Delete(ctx, rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if n != keys {
		t.Errorf("deleted %d keys, want %d", n, keys)
	}
	if left, _, err := rdb.Scan(ctx, 0, prefix+"*", 10000).Result(); err != nil || len(left) != 0 {
		t.Errorf("left under the prefix: %d keys (%v)", len(left), err)
	}
	if v, err := rdb.Get(ctx, neighbour).Result(); err != nil || v != "keep" {
		t.Errorf("neighbour key = %q, %v; want it untouched", v, err)
	}
}

func TestDeleteRefusesEmptyPrefix(t *testing.T) {
	if _, err := Delete(t.Context(), redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), ""); err == nil {
		t.Error("an empty prefix was accepted: it would delete every key")
	}
}

// The memory of a prefix's keys is counted once per key, by kind, and no
// key outside the prefix counts.
func TestMemoryUsage(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer rdb.Close()
	prefix := testenv.Name(t, "bench") + ":"
	outside := prefix[:len(prefix)-1] + "x:product:1"
	t.Cleanup(func() { Delete(context.Background(), rdb, prefix); rdb.Del(context.Background(), outside) })
	for i := range 10 {
		rdb.HSet(ctx, fmt.Sprintf("%sg3:product:SKU-%d", prefix, i), "doc", strings.Repeat("x", 500))
	}
	rdb.ZAdd(ctx, prefix+"g3:lowstock:WH-1", redis.Z{Member: "SKU-1"})
	rdb.ZAdd(ctx, prefix+"changes", redis.Z{Member: "SKU-1", Score: 1})
	rdb.HSet(ctx, outside, "doc", strings.Repeat("y", 100000))

	u, err := MemoryUsage(ctx, rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if u.Keys != 12 || len(u.Kinds) != 3 || u.Kinds["product"] < 10*500 || u.Kinds["lowstock"] == 0 || u.Kinds["changes"] == 0 {
		t.Errorf("usage %+v: want 12 keys, products over 5,000 bytes, and lowstock and changes", u)
	}
	if u.Bytes >= 100000 {
		t.Errorf("%d bytes: a key outside the prefix was counted", u.Bytes)
	}
}
