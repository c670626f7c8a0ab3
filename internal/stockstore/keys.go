package stockstore

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "stock:"

// The key layout (docs/redis-layout.md describes it for operators). Every key
// of one product carries the hash tag {product_id} so that, in a Redis
// Cluster, they all live in one slot and one Lua script may touch them
// atomically. Key names are readable on purpose: at 100,000 products the
// longer names cost about 2 MB, and operators read them with redis-cli.
const (
	productKind   = "product:"   // hash: pos (Position.Key), doc (served JSON)
	tombstoneKind = "tombstone:" // string: Position.Key of the deleting tombstone
	watermarkKind = "watermark:" // hash per topic: partition -> JSON watermarkDoc
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

type keys struct{ prefix string }

func (k keys) product(id string) string   { return k.prefix + productKind + "{" + id + "}" }
func (k keys) tombstone(id string) string { return k.prefix + tombstoneKind + "{" + id + "}" }
func (k keys) watermark(topic string) string {
	return k.prefix + watermarkKind + "{" + topic + "}"
}
