// Package testenv tells integration and end-to-end tests where the local
// stack's real services are (scripts/stack.sh starts them) and hands out
// unique names so tests never share a topic, slot, group or key prefix. It is
// imported by tests only and must never be imported by a program.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// Database creates a PostgreSQL database of the test's own (the local
// stack's role may create databases) and drops it, with any replication slot
// left in it, when the test ends. Tests that stream a whole table, TRUNCATE
// it or write heavily get their own so they neither see nor slow others.
func Database(t testing.TB, prefix string) (url string) {
	t.Helper()
	ctx := context.Background()
	name := Name(t, prefix)
	admin, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		t.Fatalf("connecting to postgres: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	cfg, err := pgx.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	url = strings.Replace(PostgresURL(), "/"+cfg.Database+"?", "/"+name+"?", 1)
	if url == PostgresURL() {
		t.Fatalf("cannot derive a database url from %s", PostgresURL())
	}
	t.Cleanup(func() {
		a, err := pgx.Connect(ctx, PostgresURL())
		if err != nil {
			return
		}
		defer a.Close(ctx)
		// A slot pins its database; wait for its walsender to go, then drop it.
		for i := 0; i < 100; i++ {
			_, _ = a.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
			var left bool
			_ = a.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE database = $1)`, name).Scan(&left)
			if !left {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := a.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	return url
}
