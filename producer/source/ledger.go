package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// ErrSlotOwner is returned when a slot is recorded as another deployment's,
// or exists with no owner recorded and nothing in this deployment's Kafka
// to show it is this one's.
var ErrSlotOwner = errors.New("replication slot belongs to another deployment")

// A slot is read by one deployment: the Kafka topics its changes went to.
// Nothing in PostgreSQL says which, so the ledger, a table beside the slots
// in the source database, records it: the owning deployment of each slot and
// the highest LSN that owner ever confirmed to it. A producer refuses a slot
// recorded as another deployment's (reading or dropping it would take the
// changes away from the owner's topics), and a slot whose confirmed LSN is
// past the ledger's was advanced by someone else: the changes in between are
// in nobody's topics of ours. The schema migrations create the same table
// (internal/inventorydb, 0004); this is for a database migrated before.
const ledgerDDL = `CREATE TABLE IF NOT EXISTS stock_producer_slots (
	slot_name     text PRIMARY KEY,
	owner         text NOT NULL,
	confirmed_lsn pg_lsn NOT NULL,
	updated_at    timestamptz NOT NULL DEFAULT now()
)`

// Owner is a slot's ledger entry.
type Owner struct {
	Deployment   string
	ConfirmedLSN uint64
	UpdatedAt    time.Time
}

// EnsureLedger creates the ledger table when missing. It looks first: the
// schema migration creates the table, and the producer's role on a secured
// database may use it but not create tables (even CREATE TABLE IF NOT
// EXISTS is refused without CREATE on the schema).
func EnsureLedger(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('stock_producer_slots') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("looking up the slot ledger (stock_producer_slots): %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, ledgerDDL); err != nil {
		return fmt.Errorf("creating the slot ledger (stock_producer_slots): %w", err)
	}
	return nil
}

// LookupOwner returns the ledger entry of slot, or nil when none.
func LookupOwner(ctx context.Context, conn *pgx.Conn, slot string) (*Owner, error) {
	var o Owner
	var lsn string
	err := conn.QueryRow(ctx, `SELECT owner, confirmed_lsn::text, updated_at FROM stock_producer_slots WHERE slot_name = $1`, slot).
		Scan(&o.Deployment, &lsn, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ledger entry of slot %s: %w", slot, err)
	}
	l, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		return nil, fmt.Errorf("parsing the ledger's confirmed lsn %q of slot %s: %w", lsn, slot, err)
	}
	o.ConfirmedLSN = uint64(l)
	return &o, nil
}

// SetOwner records deployment as the owner of slot, confirmed up to lsn.
func SetOwner(ctx context.Context, conn *pgx.Conn, slot, deployment string, lsn uint64) error {
	_, err := conn.Exec(ctx, `
		INSERT INTO stock_producer_slots (slot_name, owner, confirmed_lsn) VALUES ($1, $2, $3::pg_lsn)
		ON CONFLICT (slot_name) DO UPDATE SET owner = excluded.owner, confirmed_lsn = excluded.confirmed_lsn, updated_at = now()`,
		slot, deployment, pglogrepl.LSN(lsn).String())
	if err != nil {
		return fmt.Errorf("recording %s as the owner of slot %s: %w", deployment, slot, err)
	}
	return nil
}

// Ledger keeps the ledger's confirmed LSN of one slot ahead of what the
// stream confirms: the stream confirms at most the LSN recorded last
// (Stream.SetConfirmLimit), and Record moves it. Safe for concurrent use.
type Ledger struct {
	mu         sync.Mutex
	conn       *pgx.Conn
	slot       string
	deployment string
	recorded   uint64
}

// NewLedger returns the ledger of slot over conn, which it then uses alone;
// recorded is the LSN the entry holds now.
func NewLedger(conn *pgx.Conn, slot, deployment string, recorded uint64) *Ledger {
	return &Ledger{conn: conn, slot: slot, deployment: deployment, recorded: recorded}
}

// Record makes the entry say lsn, if it says less. It fails with
// ErrSlotOwner when the entry names another deployment now (someone took
// the slot over while this one ran): this producer must stop confirming.
func (l *Ledger) Record(ctx context.Context, lsn uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lsn <= l.recorded {
		return nil
	}
	tag, err := l.conn.Exec(ctx, `
		UPDATE stock_producer_slots SET confirmed_lsn = greatest(confirmed_lsn, $3::pg_lsn), updated_at = now()
		WHERE slot_name = $1 AND owner = $2`, l.slot, l.deployment, pglogrepl.LSN(lsn).String())
	if err != nil {
		return fmt.Errorf("recording confirmed lsn of slot %s: %w", l.slot, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: the ledger no longer names %s as the owner of slot %s (taken over?)", ErrSlotOwner, l.deployment, l.slot)
	}
	l.recorded = lsn
	return nil
}

// Recorded is the LSN last recorded.
func (l *Ledger) Recorded() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recorded
}
