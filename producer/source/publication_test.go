package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

func publicationExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// The producer's role may be allowed to read the publication and not to
// create one (a secured database): it must look before it creates, and say
// what is missing when it may not. Here the owner plays that role by giving
// up CREATE on its own database.
func TestEnsurePublicationLooksBeforeItCreates(t *testing.T) {
	ctx := context.Background()
	url := testenv.Database(t, "source")
	conn, err := Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := inventorydb.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{conn.Config().Database}.Sanitize()
	if _, err := conn.Exec(ctx, "REVOKE CREATE ON DATABASE "+db+" FROM CURRENT_USER"); err != nil {
		t.Fatal(err)
	}

	// The migration made the default publication; checking it needs no right.
	if err := EnsurePublication(ctx, conn, "stock_pub"); err != nil {
		t.Errorf("existing publication: %v", err)
	}

	missing := testenv.Name(t, "pub")
	err = EnsurePublication(ctx, conn, missing)
	if !errors.Is(err, ErrPublicationMissing) || !errors.Is(err, ErrPublicationMismatch) {
		t.Fatalf("missing publication without the right to create it: %v, want ErrPublicationMissing (an ErrPublicationMismatch)", err)
	}
	for _, want := range []string{missing, "may not create it", "CREATE PUBLICATION"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if publicationExists(t, conn, missing) {
		t.Errorf("publication %s created without the right to", missing)
	}

	if _, err := conn.Exec(ctx, "GRANT CREATE ON DATABASE "+db+" TO CURRENT_USER"); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePublication(ctx, conn, missing); err != nil || !publicationExists(t, conn, missing) {
		t.Errorf("missing publication with the right to create it: %v, exists %v", err, publicationExists(t, conn, missing))
	}
}

// On the secure profile the producer's own role (REPLICATION, SELECT on the
// published table, its ledger) finds what the migration made.
func TestSourceAsTheCDCRole(t *testing.T) {
	s := testenv.Secure(t)
	ctx := context.Background()
	own, err := pgx.Connect(ctx, s.PostgresURL(t, testenv.PGOwner))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close(ctx)
	if err := inventorydb.Migrate(ctx, own); err != nil {
		t.Fatal(err)
	}
	conn, err := Connect(ctx, s.PostgresURL(t, testenv.PGCDC))
	if err != nil {
		t.Fatalf("connecting as %s: %v", testenv.PGCDC, err)
	}
	defer conn.Close(ctx)

	if err := EnsurePublication(ctx, conn, "stock_pub"); err != nil {
		t.Errorf("checking stock_pub as %s: %v", testenv.PGCDC, err)
	}
	missing := testenv.Name(t, "pub")
	if err := EnsurePublication(ctx, conn, missing); !errors.Is(err, ErrPublicationMissing) ||
		!strings.Contains(err.Error(), "role "+testenv.PGCDC+" may not create it") {
		t.Errorf("a missing publication as %s: %v, want ErrPublicationMissing naming the role", testenv.PGCDC, err)
	}

	if err := EnsureLedger(ctx, conn); err != nil {
		t.Fatalf("the slot ledger as %s: %v", testenv.PGCDC, err)
	}
	slot := testenv.Name(t, "securetest")
	t.Cleanup(func() {
		_, _ = own.Exec(context.Background(), "DELETE FROM stock_producer_slots WHERE slot_name = $1", slot)
	})
	if err := SetOwner(ctx, conn, slot, "securetest", 42); err != nil {
		t.Fatal(err)
	}
	if o, err := LookupOwner(ctx, conn, slot); err != nil || o == nil || o.Deployment != "securetest" || o.ConfirmedLSN != 42 {
		t.Errorf("ledger entry as %s: %+v %v", testenv.PGCDC, o, err)
	}
}
