package stockstore

// The key layout: the Go functions that name every key, and the Lua helpers
// the scripts name keys with, built from the same constants (luaKeys).

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "stock:"

// The key layout (docs/redis-layout.md describes it for operators), in two
// forms: the single-node one, and the Cluster one, where a bucket's hash tag
// puts every key one write touches in one slot (type keys below). Key names
// are readable on purpose: at 100,000 products the longer names cost about
// 2 MB, and operators read them with redis-cli.
//
// Data keys live under a generation prefix: the base prefix itself for
// generation 0 (the layout before generations existed, and what an
// unconfigured store uses), base + "g<n>:" for generation n. The Lua scripts
// build the same names with helpers generated from these constants
// (luaKeys), and a test compares both on a real Redis.
const (
	productKind   = "product:"   // hash: pos (Position.Key), doc (served JSON), low (low-stock warehouses)
	tombstoneKind = "tombstone:" // string: Position.Key of the deleting tombstone
	watermarkKind = "watermark:" // hash per topic: partition -> JSON watermarkDoc
	lowStockKind  = "lowstock:"  // sorted set per warehouse, score 0: product ids whose row is LOW or OUT
	changesKind   = "changes"    // sorted set: product id scored by its apply sequence

	changesSeq   = ":seq"   // after a change index's name: its apply sequence counter
	changesFloor = ":floor" // after a change index's name: the highest sequence trimmed away
)

// The punctuation of key names, shared by the Go functions below and the
// Lua helpers built from them.
const (
	genMark   = "g" // generation n's data keys start with base + genMark + n + genEnd
	genEnd    = ":"
	tagOpen   = "{" // a hash tag: tagOpen + id + tagClose on a single node
	tagClose  = "}"
	bucketSep = ":" // on a Cluster: kind + bucket tag + bucketSep + id
)

// Keys outside any generation, under the base prefix.
const (
	generationKey     = "generation"      // string: the active generation number
	generationLastKey = "generation:last" // counter: the last generation handed out
	generationNextKey = "generation:next" // string with TTL: the generation a rebuild is about to switch to
	rebuildLockKey    = "rebuild:lock"    // string with TTL: one rebuild at a time
)

// Hash fields of a product key.
const (
	fieldPos = "pos"
	fieldDoc = "doc"
)

// ErrBadPrefix is returned by New for a prefix that would break the layout.
var ErrBadPrefix = errors.New("invalid key prefix")

// ValidatePrefix reports whether prefix can prefix the layout's keys.
func ValidatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("%w: empty", ErrBadPrefix)
	case strings.ContainsAny(prefix, "{}"):
		// A brace in the prefix would become the hash tag and put every
		// product in one Cluster slot.
		return fmt.Errorf("%w: %q contains a brace", ErrBadPrefix, prefix)
	}
	return nil
}

// genPrefix is the prefix of generation gen's data keys.
func genPrefix(base string, gen int64) string {
	if gen == 0 {
		return base
	}
	return base + genMark + strconv.FormatInt(gen, 10) + genEnd
}

// ClusterBuckets is the number of slot groups (buckets) of the layout on a
// Redis Cluster. A product lives in bucket fnv1a(id) mod ClusterBuckets and
// every key it touches in one write carries the bucket's hash tag {b<k>}:
// its hash, its tombstone, its entries in the low-stock sets and the change
// index of the bucket, and the bucket's copy of the generation pointer. So
// one script updates them atomically in one slot, which a Cluster requires.
// Reads of the indexes merge the buckets. 16 spreads evenly over up to a
// handful of masters; changing it changes every key name (a new prefix and
// a rebuild).
const ClusterBuckets = 16

// bucketOf is the bucket of a product (or of a partition's watermark, by
// its number) in a layout of n buckets.
func bucketOf(id string, n int) int {
	h := uint32(2166136261) // FNV-1a, 32 bits
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// bucketTag is the hash tag of bucket k.
func bucketTag(k int) string { return tagOpen + "b" + strconv.Itoa(k) + tagClose }

// keys names the data keys of one generation. On a single node (buckets
// 0) every key of a product carries the hash tag {product_id}, the
// low-stock set of a warehouse {warehouse_id}, and the change index is one
// key. On a Cluster (buckets > 0) the bucket's tag replaces them:
// product:{b<k>}:<id>, lowstock:{b<k>}:<wh>, changes:{b<k>}. The Lua
// scripts build the same names with key and ckey (luaKeys).
type keys struct {
	prefix  string
	buckets int
}

func (k keys) tagged(kind string, bucket int, rest string) string {
	if k.buckets == 0 {
		return k.prefix + kind + tagOpen + rest + tagClose
	}
	return k.prefix + kind + bucketTag(bucket) + bucketSep + rest
}

func (k keys) bucket(id string) int {
	if k.buckets == 0 {
		return 0
	}
	return bucketOf(id, k.buckets)
}

func (k keys) product(id string) string   { return k.tagged(productKind, k.bucket(id), id) }
func (k keys) tombstone(id string) string { return k.tagged(tombstoneKind, k.bucket(id), id) }

// watermark is the hash of a topic's watermarks; on a Cluster one per
// bucket, partition p's in bucket p mod buckets (watermarkBucket).
func (k keys) watermark(topic string, bucket int) string {
	return k.tagged(watermarkKind, bucket, topic)
}

// lowStock is the low-stock set of a warehouse (of one bucket on a Cluster).
func (k keys) lowStock(warehouseID string, bucket int) string {
	return k.tagged(lowStockKind, bucket, warehouseID)
}

// changes is the change index (of one bucket on a Cluster).
func (k keys) changes(bucket int) string {
	if k.buckets == 0 {
		return k.prefix + changesKind
	}
	return k.prefix + changesKind + bucketSep + bucketTag(bucket)
}

// watermarkBucket is the bucket of a partition's watermark.
func (k keys) watermarkBucket(partition int32) int {
	if k.buckets == 0 {
		return 0
	}
	return int(partition) % k.buckets
}

// pointerKey is the generation pointer the scripts of a bucket read: the
// pointer itself on a single node, the bucket's copy on a Cluster (the
// scripts may only touch keys of their bucket's slot).
func pointerKey(base string, buckets, bucket int) string {
	if buckets == 0 {
		return base + generationKey
	}
	return base + generationKey + bucketSep + bucketTag(bucket)
}

// nextPointerKey is the next-generation pointer (Rebuild.Mirror) the
// scripts of a bucket read: one key on a single node, a copy per bucket, in
// its slot, on a Cluster.
func nextPointerKey(base string, buckets, bucket int) string {
	if buckets == 0 {
		return base + generationNextKey
	}
	return base + generationNextKey + bucketSep + bucketTag(bucket)
}

// luaKeys is the Lua twin of the functions above, for the scripts, which
// resolve the generation themselves and so cannot take every key as KEYS.
// It is generated from the same constants; what it cannot share is the
// shape of each name, which TestLuaKeysMatchGo checks on a real Redis.
//
// genprefix(base, n) is genPrefix for n > 0 (n a string). key(p, bt, kind,
// rest) is keys.tagged and ckey(p, bt) keys.changes, with p a generation's
// prefix and bt the bucket's hash tag on a Cluster, empty on a single node.
// PRODUCT, TOMBSTONE, LOWSTOCK and WATERMARK are the kinds, SEQ and FLOOR
// what follows a change index's name for its counter and its floor.
var luaKeys = func() string {
	q := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`, "\n", `\n`).Replace(s) + "'"
	}
	t := template.Must(template.New("keys").Parse(`
local PRODUCT, TOMBSTONE, LOWSTOCK, WATERMARK = {{.product}}, {{.tombstone}}, {{.lowstock}}, {{.watermark}}
local SEQ, FLOOR = {{.seq}}, {{.floor}}
local function genprefix(base, n)
  return base .. {{.genMark}} .. n .. {{.genEnd}}
end
local function key(p, bt, kind, rest)
  if bt == '' then return p .. kind .. {{.tagOpen}} .. rest .. {{.tagClose}} end
  return p .. kind .. bt .. {{.bucketSep}} .. rest
end
local function ckey(p, bt)
  if bt == '' then return p .. {{.changes}} end
  return p .. {{.changes}} .. {{.bucketSep}} .. bt
end
`))
	var b strings.Builder
	if err := t.Execute(&b, map[string]string{
		"product": q(productKind), "tombstone": q(tombstoneKind), "lowstock": q(lowStockKind),
		"watermark": q(watermarkKind), "changes": q(changesKind), "seq": q(changesSeq), "floor": q(changesFloor),
		"genMark": q(genMark), "genEnd": q(genEnd), "tagOpen": q(tagOpen), "tagClose": q(tagClose),
		"bucketSep": q(bucketSep),
	}); err != nil {
		panic(err) // the template and its data are fixed: a failure is a bug here
	}
	return b.String()
}()
