// Package source reads inventory_levels out of PostgreSQL: it manages the
// publication and the logical replication slot, reads the initial snapshot
// exported by the slot, and streams pgoutput transactions to a Handler. It
// knows nothing of Kafka: it confirms to PostgreSQL only the LSN its caller
// acknowledged with Stream.Ack.
package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Table is the one table the producer captures.
const Table = "inventory_levels"

// ErrSlotMismatch is returned when an existing slot cannot be used as is.
var ErrSlotMismatch = errors.New("replication slot does not match the configuration")

// ErrPublicationMismatch is returned when an existing publication does not
// publish exactly the captured table.
var ErrPublicationMismatch = errors.New("publication does not match the configuration")

// ErrPublicationMissing is returned when the publication does not exist and
// the producer's role may not create it (that takes the table's owner and
// CREATE on the database). It is an ErrPublicationMismatch too: restarting
// does not help, an administrator or the schema migration has to create it.
var ErrPublicationMissing = fmt.Errorf("publication missing and not ours to create: %w", ErrPublicationMismatch)

// ConnectReplication opens a logical replication connection (replication=database).
func ConnectReplication(ctx context.Context, url string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres url: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	// pgoutput renders values as text in the walsender's time zone; pin it so
	// timestamps decode the same whatever the server default is.
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "stock-producer"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting for replication: %w", err)
	}
	return conn, nil
}

// Connect opens an ordinary connection for catalog queries, heartbeats and
// the snapshot read.
func Connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres url: %w", err)
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "stock-producer"
	// The server probes an idle connection: one whose client vanished
	// (host gone, a NAT dropping it) ends within about a minute, and with
	// it the slot's advisory lock (ClaimSlot), which would otherwise keep
	// every later run out for the system's default of two hours. The URL
	// may set other values.
	for k, v := range map[string]string{"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"} {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return conn, nil
}

// EnsurePublication checks that the publication publishes exactly the
// captured table with inserts, updates, deletes and truncates, creating it
// first only when it is missing. It looks before it creates: on a secured
// database the producer's role neither owns the table nor may create
// publications (the migration or an administrator makes it), and a missing
// publication it may not create is an ErrPublicationMissing naming what to do.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists, table, mayCreate bool
	var role string
	// Creating a publication for a table takes CREATE on the database and
	// the table's owner (a superuser passes both checks). A missing table
	// is left to CREATE PUBLICATION to report.
	if err := conn.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),
		       to_regclass($2) IS NOT NULL,
		       has_database_privilege(current_database(), 'CREATE')
		       AND coalesce(pg_has_role((SELECT relowner FROM pg_class WHERE oid = to_regclass($2)), 'USAGE'), false),
		       current_user`,
		name, "public."+Table).Scan(&exists, &table, &mayCreate, &role); err != nil {
		return fmt.Errorf("looking up publication %s: %w", name, err)
	}
	if !exists && table && !mayCreate {
		return fmt.Errorf("%w: %s does not exist and role %s may not create it (run the schema migrations as the table's owner, or have an administrator run CREATE PUBLICATION %s FOR TABLE public.%s)",
			ErrPublicationMissing, name, role, pgx.Identifier{name}.Sanitize(), Table)
	}
	if !exists {
		sql := fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE public.%s`, pgx.Identifier{name}.Sanitize(), Table)
		if _, err := conn.Exec(ctx, sql); err != nil {
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr) && pgErr.Code == "42710":
				// Two producers starting together may race to create it.
			case errors.As(err, &pgErr) && pgErr.Code == "42501":
				return fmt.Errorf("%w: %s does not exist and role %s may not create it: %w", ErrPublicationMissing, name, role, err)
			default:
				return fmt.Errorf("creating publication %s: %w", name, err)
			}
		}
	}
	var tables []string
	var ins, upd, del, trunc, all bool
	err := conn.QueryRow(ctx, `
		SELECT p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
		       COALESCE((SELECT array_agg(t.schemaname || '.' || t.tablename ORDER BY 1)
		                 FROM pg_publication_tables t WHERE t.pubname = p.pubname), '{}')
		FROM pg_publication p WHERE p.pubname = $1`, name).Scan(&all, &ins, &upd, &del, &trunc, &tables)
	if err != nil {
		return fmt.Errorf("reading publication %s: %w", name, err)
	}
	want := "public." + Table
	if all || len(tables) != 1 || tables[0] != want {
		return fmt.Errorf("%w: %s publishes %v (all tables: %v), want exactly %s", ErrPublicationMismatch, name, tables, all, want)
	}
	if !ins || !upd || !del || !trunc {
		return fmt.Errorf("%w: %s must publish insert, update, delete and truncate", ErrPublicationMismatch, name)
	}
	return nil
}

// Slot describes an existing replication slot.
type Slot struct {
	Name           string
	Plugin         string
	Database       string
	ConfirmedFlush uint64
	Active         bool
	// Lost is true when PostgreSQL removed WAL the slot still needed
	// (max_slot_wal_keep_size): it can never be read again.
	Lost bool
}

// LookupSlot returns the slot, or nil when it does not exist. A slot of the
// wrong kind, plugin or database is an ErrSlotMismatch.
func LookupSlot(ctx context.Context, conn *pgx.Conn, name string) (*Slot, error) {
	var s Slot
	var slotType, walStatus string
	var confirmed *string
	err := conn.QueryRow(ctx, `
		SELECT slot_name, COALESCE(plugin, ''), slot_type, COALESCE(database::text, ''),
		       confirmed_flush_lsn::text, active, COALESCE(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&s.Name, &s.Plugin, &slotType, &s.Database, &confirmed, &s.Active, &walStatus)
	s.Lost = walStatus == "lost"
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up slot %s: %w", name, err)
	}
	if slotType != "logical" || s.Plugin != "pgoutput" {
		return nil, fmt.Errorf("%w: slot %s is %s with plugin %q, want logical pgoutput", ErrSlotMismatch, name, slotType, s.Plugin)
	}
	if db := conn.Config().Database; s.Database != db {
		return nil, fmt.Errorf("%w: slot %s belongs to database %q, want %q", ErrSlotMismatch, name, s.Database, db)
	}
	if confirmed != nil {
		lsn, err := pglogrepl.ParseLSN(*confirmed)
		if err != nil {
			return nil, fmt.Errorf("parsing confirmed lsn of slot %s: %w", name, err)
		}
		s.ConfirmedFlush = uint64(lsn)
	}
	return &s, nil
}

// SlotLagBytes is how much WAL the slot holds back: the current WAL
// position minus its confirmed LSN; nil when the slot does not exist or has
// confirmed nothing.
func SlotLagBytes(ctx context.Context, conn *pgx.Conn, name string) (*int64, error) {
	var lag *int64
	err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lag of slot %s: %w", name, err)
	}
	return lag, nil
}

// ClaimSlot takes a session-level advisory lock named after the slot on
// conn, and reports whether it got it: false while another producer of the
// same slot runs. The slot's own active flag does not tell: PostgreSQL
// releases a new slot after creating it, so it shows inactive for as long
// as its snapshot is read, until streaming starts. The lock goes with
// conn, also when the process dies.
func ClaimSlot(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('stock.producer'), hashtext($1))`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("claiming slot %s: %w", name, err)
	}
	return ok, nil
}

// DropSlot drops the slot, waiting for a previous owner's connection to let go.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
		return fmt.Errorf("dropping slot %s: %w", name, err)
	}
	return nil
}

// CreatedSlot is a new slot with the snapshot it exported.
type CreatedSlot struct {
	ConsistentPoint uint64
	SnapshotName    string
}

// CreateSlot creates a logical pgoutput slot on a replication connection and
// exports its snapshot. The snapshot stays valid only until the next command
// on that connection: read it before starting replication.
func CreateSlot(ctx context.Context, repl *pgconn.PgConn, name string) (CreatedSlot, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return CreatedSlot{}, fmt.Errorf("creating slot %s: %w", name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return CreatedSlot{}, fmt.Errorf("parsing consistent point %q of slot %s: %w", res.ConsistentPoint, name, err)
	}
	return CreatedSlot{ConsistentPoint: uint64(lsn), SnapshotName: res.SnapshotName}, nil
}
