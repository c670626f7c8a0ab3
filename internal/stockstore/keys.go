package stockstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// build the same names (scripts.go): keep both in step.
const (
	productKind   = "product:"   // hash: pos (Position.Key), doc (served JSON), low (low-stock warehouses)
	tombstoneKind = "tombstone:" // string: Position.Key of the deleting tombstone
	watermarkKind = "watermark:" // hash per topic: partition -> JSON watermarkDoc
	lowStockKind  = "lowstock:"  // sorted set per warehouse, score 0: product ids whose row is LOW or OUT
	changesKind   = "changes"    // sorted set: product id scored by its apply sequence
	// changes + ":seq" is the apply sequence counter, changes + ":floor" the
	// highest sequence trimmed away.
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
	return base + "g" + strconv.FormatInt(gen, 10) + ":"
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
func bucketTag(k int) string { return "{b" + strconv.Itoa(k) + "}" }

// keys names the data keys of one generation. On a single node (buckets
// 0) every key of a product carries the hash tag {product_id}, the
// low-stock set of a warehouse {warehouse_id}, and the change index is one
// key. On a Cluster (buckets > 0) the bucket's tag replaces them:
// product:{b<k>}:<id>, lowstock:{b<k>}:<wh>, changes:{b<k>}. The Lua
// scripts build the same names (scripts.go, key and ckey): keep both in
// step.
type keys struct {
	prefix  string
	buckets int
}

func (k keys) tagged(kind string, bucket int, rest string) string {
	if k.buckets == 0 {
		return k.prefix + kind + "{" + rest + "}"
	}
	return k.prefix + kind + bucketTag(bucket) + ":" + rest
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
	return k.prefix + changesKind + ":" + bucketTag(bucket)
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
	return base + generationKey + ":" + bucketTag(bucket)
}

// nextPointerKey is the next-generation pointer (Store.SetNext) the scripts
// of a bucket read: one key on a single node, a copy per bucket, in its
// slot, on a Cluster.
func nextPointerKey(base string, buckets, bucket int) string {
	if buckets == 0 {
		return base + generationNextKey
	}
	return base + generationNextKey + ":" + bucketTag(bucket)
}
