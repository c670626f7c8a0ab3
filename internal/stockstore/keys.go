package stockstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "stock:"

// The key layout (docs/redis-layout.md describes it for operators). Every key
// of one product carries the hash tag {product_id} so that, in a Redis
// Cluster, they all live in one slot. Key names are readable on purpose: at
// 100,000 products the longer names cost about 2 MB, and operators read them
// with redis-cli.
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

type keys struct{ prefix string }

func (k keys) product(id string) string   { return k.prefix + productKind + "{" + id + "}" }
func (k keys) tombstone(id string) string { return k.prefix + tombstoneKind + "{" + id + "}" }
func (k keys) watermark(topic string) string {
	return k.prefix + watermarkKind + "{" + topic + "}"
}
func (k keys) lowStock(warehouseID string) string {
	return k.prefix + lowStockKind + "{" + warehouseID + "}"
}
func (k keys) changes() string { return k.prefix + changesKind }
