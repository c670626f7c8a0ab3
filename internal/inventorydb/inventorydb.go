// Package inventorydb owns the source-of-truth SQL contract: the PostgreSQL
// schema (versioned, embedded migrations applied by Migrate), the plpgsql
// write API every stock change goes through (stock_receive, stock_adjust,
// stock_count, stock_transfer, stock_reserve, stock_release, stock_commit,
// stock_expire), demo data (Seed) and a thin Go wrapper over that API for the
// load simulator and tests.
//
// It must never write inventory_levels or stock_reservations except through
// the SQL write functions (the pipeline relies on every change being stamped
// and versioned by them), and it knows nothing of Kafka, Redis or the CDC
// stream that reads the tables.
package inventorydb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier runs statements: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts transactions: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx
// (whose Begin is a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PoolConfig configures the one pgx pool constructor of the source database.
type PoolConfig struct {
	URL             string
	MaxConns        int32         // 0 keeps the pgx default
	ApplicationName string        // shown in pg_stat_activity
	ConnectTimeout  time.Duration // 0 means 5s
}

// OpenPool connects a pool to the source database and checks it answers.
func OpenPool(ctx context.Context, cfg PoolConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The parse error may quote the URL and its password: don't wrap it.
		return nil, fmt.Errorf("parsing postgres URL: invalid connection string")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.ApplicationName != "" {
		pc.ConnConfig.RuntimeParams["application_name"] = cfg.ApplicationName
	}
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.ConnectTimeout <= 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("creating postgres pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, pc.ConnConfig.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pinging postgres at %s:%d: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, err)
	}
	return pool, nil
}
