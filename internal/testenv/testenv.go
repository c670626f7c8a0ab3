// Package testenv tells integration and end-to-end tests where the local
// stack's real services are (scripts/stack.sh starts them) and hands out
// unique names so tests never share a topic, slot, group or key prefix. It is
// imported by tests only and must never be imported by a program.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// PostgresURL is the stock database of the local stack.
func PostgresURL() string {
	return getenv("STOCK_PG_URL", "postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable")
}

// KafkaBrokers is the seed broker list of the local stack.
func KafkaBrokers() []string {
	return strings.Split(getenv("STOCK_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
}

// RedisAddr is the Redis of the local stack.
func RedisAddr() string { return getenv("STOCK_REDIS_ADDR", "127.0.0.1:6379") }

// Name returns prefix followed by a random suffix that is unique per call,
// safe for topic, slot, group, database object and Redis key names
// (lower-case letters, digits and underscores only).
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}
