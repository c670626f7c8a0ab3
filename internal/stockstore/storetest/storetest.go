// Package storetest gives tests a stockstore.Store over the local stack's
// real Redis under a unique key prefix that is deleted when the test ends.
// It is imported by tests only and must never be imported by a program.
package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/testenv"
)

// Client returns a client of the local stack's Redis, failing the test when
// Redis does not answer. It is closed when the test ends.
func Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs = []string{testenv.RedisAddr()}
	rdb := stockstore.NewClient(cfg)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (start it with scripts/stack.sh): %v", testenv.RedisAddr(), err)
	}
	return rdb
}

// Prefix returns a unique key prefix whose keys are deleted when the test ends.
func Prefix(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	prefix := testenv.Name(t, "test") + ":"
	t.Cleanup(func() { DeletePrefix(t, rdb, prefix) })
	return prefix
}

// New returns a Store under a unique prefix, and its client.
func New(t testing.TB) (*stockstore.Store, redis.UniversalClient) {
	t.Helper()
	rdb := Client(t)
	st, err := stockstore.New(rdb, Prefix(t, rdb))
	if err != nil {
		t.Fatal(err)
	}
	return st, rdb
}

// Keys returns every key under prefix, sorted.
func Keys(t testing.TB, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var ks []string
	for iter.Next(ctx) {
		ks = append(ks, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scanning keys under %s: %v", prefix, err)
	}
	slices.Sort(ks)
	return slices.Compact(ks) // SCAN may return a key twice
}

// DeletePrefix deletes every key under prefix.
func DeletePrefix(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	ctx := context.Background()
	for chunk := range slices.Chunk(Keys(t, rdb, prefix), 500) {
		if err := rdb.Del(ctx, chunk...).Err(); err != nil {
			t.Errorf("deleting keys under %s: %v", prefix, err)
		}
	}
}
