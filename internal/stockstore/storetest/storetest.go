// Package storetest gives tests a stockstore.Store over the local stack's
// real Redis under a unique key prefix that is deleted when the test ends.
// It is imported by tests only and must never be imported by a program.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// NewOn returns a Store over rdb (a Cluster's, say) under a unique prefix
// whose keys are deleted when the test ends.
func NewOn(t testing.TB, rdb redis.UniversalClient) *stockstore.Store {
	t.Helper()
	st, err := stockstore.New(rdb, Prefix(t, rdb))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Keys returns every key under prefix, sorted (of every master of a
// Cluster).
func Keys(t testing.TB, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var ks []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			ks = append(ks, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
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
		// One DEL per key: on a Cluster the keys are in many slots.
		pipe := rdb.Pipeline()
		for _, k := range chunk {
			pipe.Del(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Errorf("deleting keys under %s: %v", prefix, err)
		}
	}
}

// Dump returns the state of the cache generation whose keys start with
// prefix, key (without prefix) to a canonical text of its value, for
// comparing two generations key for key. What legitimately differs between
// two projections of the same records is left out: the change index's
// apply sequence numbers (only its members count), and a watermark's
// applied_at and commit_time (only offset and position count).
func Dump(t testing.TB, rdb redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range Keys(t, rdb, prefix) {
		rel := k[len(prefix):]
		if otherGeneration(rel) {
			continue
		}
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v string
		switch {
		case strings.HasPrefix(rel, "changes") && (strings.HasSuffix(rel, ":seq") || strings.HasSuffix(rel, ":floor")):
			continue // changes:seq, or changes:{b<k>}:seq on a Cluster
		case typ == "string":
			v, err = rdb.Get(ctx, k).Result()
		case typ == "hash":
			var m map[string]string
			m, err = rdb.HGetAll(ctx, k).Result()
			if strings.HasPrefix(rel, "watermark:") {
				for f, doc := range m {
					var w struct {
						Offset   int64  `json:"offset"`
						Position string `json:"position"`
					}
					_ = json.Unmarshal([]byte(doc), &w)
					m[f] = fmt.Sprintf("%d@%s", w.Offset, w.Position)
				}
			}
			v = fmt.Sprint(m) // fmt sorts map keys
		case typ == "zset":
			var ms []string
			ms, err = rdb.ZRange(ctx, k, 0, -1).Result()
			slices.Sort(ms)
			v = strings.Join(ms, ",")
		default:
			v = "type " + typ
		}
		if err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
		out[rel] = v
	}
	return out
}

// GenPrefix is the key prefix of generation gen under base (0: base).
func GenPrefix(base string, gen int64) string {
	if gen == 0 {
		return base
	}
	return fmt.Sprintf("%sg%d:", base, gen)
}

// otherGeneration reports whether a key relative to a base prefix belongs to
// no generation (pointer, lock) or to generation n > 0.
func otherGeneration(rel string) bool {
	if strings.HasPrefix(rel, "generation") || strings.HasPrefix(rel, "rebuild:") {
		return true
	}
	if len(rel) < 3 || rel[0] != 'g' {
		return false
	}
	i := 1
	for i < len(rel) && rel[i] >= '0' && rel[i] <= '9' {
		i++
	}
	return i > 1 && i < len(rel) && rel[i] == ':'
}
