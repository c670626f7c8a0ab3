package stockstore

import (
	"context"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/testenv"
)

// The scripts name keys in Lua (luaKeys), the reads in Go (keys): a name
// that differs by one character is a write no read ever finds. So every
// kind of key is computed both ways, in the real Redis's Lua, for both
// layouts and for generation 0 (the base itself) and a numbered one.
func TestLuaKeysMatchGo(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.Addrs = []string{testenv.RedisAddr()}
	rdb := NewClient(cfg)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (start it with scripts/stack.sh): %v", testenv.RedisAddr(), err)
	}
	// gprefix resolves a given generation without reading KEYS[1]; its
	// pointer is named only to make the call valid.
	script := luaPrefix + `
local p = gprefix(ARGV[1], ARGV[2])
local bt, id, wh, topic = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
return {p, key(p, bt, PRODUCT, id), key(p, bt, TOMBSTONE, id), key(p, bt, LOWSTOCK, wh),
  key(p, bt, WATERMARK, topic), ckey(p, bt), ckey(p, bt) .. SEQ, ckey(p, bt) .. FLOOR}
`
	const base, id, wh, topic = "stock:", "SKU-000042", "WH-01", "stock.levels.v1"
	for _, buckets := range []int{0, ClusterBuckets} {
		for _, gen := range []int64{0, 7} {
			k := keys{prefix: genPrefix(base, gen), buckets: buckets}
			b := k.bucket(id)
			bt := ""
			if buckets > 0 {
				bt = bucketTag(b)
			}
			want := []string{k.prefix, k.product(id), k.tombstone(id), k.lowStock(wh, b),
				k.watermark(topic, b), k.changes(b), k.changes(b) + changesSeq, k.changes(b) + changesFloor}
			got, err := rdb.Eval(ctx, script, []string{pointerKey(base, buckets, b)},
				base, gen, bt, id, wh, topic).StringSlice()
			if err != nil {
				t.Fatalf("evaluating the key helpers: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("buckets %d, generation %d: Lua named %d keys, want %d", buckets, gen, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("buckets %d, generation %d: Lua %q, Go %q", buckets, gen, got[i], want[i])
				}
			}
		}
	}
}
