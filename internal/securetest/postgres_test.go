package securetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// psqlConn is a libpq connection string; the password goes in PGPASSWORD.
func psqlConn(s *testenv.SecureStack, role, host, sslmode string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: s.PGAddr, Path: "/" + testenv.SecureDatabase}
	q := url.Values{"sslmode": {sslmode}, "sslrootcert": {s.CAFile}, "connect_timeout": {"10"}}
	if role == testenv.PGCDC { // it must show its client certificate too
		q.Set("sslcert", s.CDCCert)
		q.Set("sslkey", s.CDCKey)
	}
	if host != "" {
		// Dial the server's address but check its certificate against host.
		hostaddr, port, _ := net.SplitHostPort(s.PGAddr)
		u.Host = host + ":" + port
		q.Set("hostaddr", hostaddr)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// psql runs one statement as role with password pw over TLS checked
// against the local CA and the host name.
func psql(t *testing.T, s *testenv.SecureStack, role, pw, sql string) result {
	t.Helper()
	return run(t, []string{"PGPASSWORD=" + pw}, tool(t, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
		"-d", psqlConn(s, role, "", "verify-full"), "-c", sql)
}

// pgxConnect connects with cfg changed by change, within early.
func pgxConnect(t *testing.T, s *testenv.SecureStack, role string, change func(*pgx.ConnConfig)) (time.Duration, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.PostgresURL(t, role))
	if err != nil {
		t.Fatal(err)
	}
	change(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*early)
	defer cancel()
	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		conn.Close(ctx)
	}
	return time.Since(start), err
}

func TestPostgresRefusesBadClients(t *testing.T) {
	s := testenv.Secure(t)
	ownerPW := s.Password(t, "pg", testenv.PGOwner)
	t.Run("psql", func(t *testing.T) {
		for _, tc := range []struct {
			name          string
			pw, host, ssl string
			want          []string
		}{
			{"wrong password", "not-the-password", "", "verify-full", []string{`password authentication failed for user "stock"`}},
			{"without TLS", ownerPW, "", "disable", []string{"pg_hba.conf rejects connection", "no encryption"}},
			{"certificate for another host", ownerPW, "wrong.invalid", "verify-full", []string{"does not match host name", "wrong.invalid"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := run(t, []string{"PGPASSWORD=" + tc.pw}, tool(t, "psql"), "-X", "-At",
					"-d", psqlConn(s, testenv.PGOwner, tc.host, tc.ssl), "-c", "SELECT 1")
				refusedRun(t, tc.name, r, tc.want...)
			})
		}
		if r := psql(t, s, testenv.PGOwner, ownerPW, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); r.err != nil || r.out != "t\n" {
			t.Errorf("the owner over TLS: %q %v", r.out, r.err)
		}
	})
	t.Run("pgx", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(*pgx.ConnConfig)
			want   []string
		}{
			{"wrong password", func(c *pgx.ConnConfig) { c.Password = "not-the-password" },
				[]string{"password authentication failed", "28P01"}},
			{"without TLS", func(c *pgx.ConnConfig) { c.TLSConfig = nil; c.Fallbacks = nil },
				[]string{"pg_hba.conf rejects connection", "no encryption"}},
			{"certificate for another host", func(c *pgx.ConnConfig) { c.TLSConfig.ServerName = "wrong.invalid"; c.Fallbacks = nil },
				[]string{"certificate is valid for", "not wrong.invalid"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				took, err := pgxConnect(t, s, testenv.PGOwner, tc.change)
				refused(t, tc.name, err, "", took, tc.want...)
			})
		}
	})
}

// fixture is a product with two warehouses of the test's own in the secure
// stock database, made and deleted by the owner (the roles under test may
// not write those tables).
type fixture struct {
	product string
	wh      []string
}

func newFixture(t *testing.T, own *pgx.Conn) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{product: testenv.Name(t, "sku"), wh: []string{testenv.Name(t, "wh"), testenv.Name(t, "wh")}}
	slices.Sort(f.wh)
	if err := inventorydb.AddProduct(ctx, own, f.product, t.Name()); err != nil {
		t.Fatal(err)
	}
	for _, wh := range f.wh {
		if err := inventorydb.AddWarehouse(ctx, own, wh, t.Name()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []struct {
			sql string
			arg any
		}{
			{"DELETE FROM stock_adjustments WHERE product_id = $1", f.product},
			{"DELETE FROM stock_reservations WHERE product_id = $1", f.product},
			{"DELETE FROM inventory_levels WHERE product_id = $1", f.product},
			{"DELETE FROM products WHERE product_id = $1", f.product},
			{"DELETE FROM warehouses WHERE warehouse_id = ANY($1)", f.wh},
		} {
			if _, err := own.Exec(context.Background(), q.sql, q.arg); err != nil {
				t.Errorf("cleaning up: %s: %v", q.sql, err)
			}
		}
	})
	return f
}

// denied checks that err is PostgreSQL's insufficient_privilege naming what.
func denied(t *testing.T, what string, err error, object string) {
	t.Helper()
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "42501" {
		t.Errorf("%s: %v, want permission denied (42501)", what, err)
		return
	}
	if object != "" && !bytes.Contains([]byte(pg.Message), []byte(object)) {
		t.Errorf("%s: %q does not name %s", what, pg.Message, object)
	}
}

func TestPostgresWriterRole(t *testing.T) {
	s := testenv.Secure(t)
	ctx := context.Background()
	own := owner(t, s)
	f := newFixture(t, own)
	w := connect(t, s, testenv.PGWriter)

	t.Run("calls the write functions", func(t *testing.T) {
		steps := []struct {
			name string
			call func() error
		}{
			{"receive", func() error { _, err := inventorydb.Receive(ctx, w, f.product, f.wh[0], 50, "po-1"); return err }},
			{"adjust", func() error {
				_, err := inventorydb.Adjust(ctx, w, f.product, f.wh[0], -2, "damaged", "adj-1")
				return err
			}},
			{"count", func() error { _, err := inventorydb.Count(ctx, w, f.product, f.wh[1], 9, "count-1"); return err }},
			{"transfer", func() error {
				_, _, err := inventorydb.Transfer(ctx, w, f.product, f.wh[0], f.wh[1], 8, "tr-1")
				return err
			}},
			{"reserve", func() error {
				_, err := inventorydb.Reserve(ctx, w, inventorydb.ReserveRequest{ReservationID: f.product + "-r1", ProductID: f.product, WarehouseID: f.wh[0], Quantity: 3})
				return err
			}},
			{"commit", func() error { _, err := inventorydb.Commit(ctx, w, f.product+"-r1", ""); return err }},
			{"reserve again", func() error {
				_, err := inventorydb.Reserve(ctx, w, inventorydb.ReserveRequest{ReservationID: f.product + "-r2", ProductID: f.product, WarehouseID: f.wh[1], Quantity: 1, TTL: time.Millisecond})
				return err
			}},
			{"release", func() error {
				_, err := inventorydb.Reserve(ctx, w, inventorydb.ReserveRequest{ReservationID: f.product + "-r3", ProductID: f.product, WarehouseID: f.wh[1], Quantity: 1})
				if err == nil {
					_, err = inventorydb.Release(ctx, w, f.product+"-r3", "")
				}
				return err
			}},
			{"expire", func() error { _, err := inventorydb.Expire(ctx, w, time.Now().Add(time.Hour), 1000); return err }},
		}
		for _, st := range steps {
			if err := st.call(); err != nil {
				t.Fatalf("%s as %s: %v", st.name, testenv.PGWriter, err)
			}
		}
		// What the writes did, read by the owner: 50-2-8-3 at the first
		// warehouse, 9+8 at the second with its expired reservation given back.
		for i, want := range []int{37, 17} {
			l, err := inventorydb.LoadLevel(ctx, own, f.product, f.wh[i])
			if err != nil || l.OnHand != want || l.Reserved != 0 {
				t.Errorf("%s: %+v (%v), want on_hand %d reserved 0", f.wh[i], l, err, want)
			}
		}
	})

	t.Run("refused anything else", func(t *testing.T) {
		for _, tc := range []struct {
			sql    string
			object string
		}{
			{"UPDATE inventory_levels SET on_hand = 1000 WHERE product_id = '" + f.product + "'", "table inventory_levels"},
			// Needs the UPDATE right alone (no column read), and touches no row.
			{"UPDATE inventory_levels SET on_hand = 1000 WHERE false", "table inventory_levels"},
			{"INSERT INTO inventory_levels (product_id, warehouse_id, on_hand) VALUES ('" + f.product + "', '" + f.wh[0] + "', 1)", "table inventory_levels"},
			{"DELETE FROM stock_reservations", "table stock_reservations"},
			{"SELECT count(*) FROM inventory_levels", "table inventory_levels"},
			{"INSERT INTO products (product_id) VALUES ('x')", "table products"},
			{"SELECT * FROM _stock_lock_level('" + f.product + "', '" + f.wh[0] + "')", "function _stock_lock_level"},
			{"SELECT stock_grant_roles()", "function stock_grant_roles"},
			{"SELECT stock_request_resnapshot(NULL)", "function stock_request_resnapshot"},
			{"SELECT pg_logical_emit_message(true, 'stock.resnapshot', '{}')", "function pg_logical_emit_message"},
			{"CREATE TABLE inventory_levels_copy (x int)", "schema public"},
		} {
			_, err := w.Exec(ctx, tc.sql)
			denied(t, tc.sql, err, tc.object)
		}
		// The same refusal as a warehouse service in another language meets it.
		r := psql(t, s, testenv.PGWriter, s.Password(t, "pg", testenv.PGWriter),
			"UPDATE inventory_levels SET on_hand = 1000 WHERE product_id = '"+f.product+"'")
		refusedRun(t, "psql UPDATE as the writer", r, "permission denied for table inventory_levels")
	})
}

func TestPostgresCDCRole(t *testing.T) {
	s := testenv.Secure(t)
	ctx := context.Background()
	own := owner(t, s)
	f := newFixture(t, own)
	cdc := connect(t, s, testenv.PGCDC)
	w := connect(t, s, testenv.PGWriter)

	t.Run("no superuser and no table of its own", func(t *testing.T) {
		var super, repl, owns bool
		if err := cdc.QueryRow(ctx, `SELECT rolsuper, rolreplication,
			EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
			FROM pg_roles r WHERE rolname = current_user`).Scan(&super, &repl, &owns); err != nil {
			t.Fatal(err)
		}
		if super || !repl || owns {
			t.Errorf("superuser %v, replication %v, owns a relation %v; want false, true, false", super, repl, owns)
		}
	})

	t.Run("refused writes and other tables", func(t *testing.T) {
		for _, tc := range []struct {
			sql    string
			object string
		}{
			{"SELECT * FROM stock_receive('" + f.product + "', '" + f.wh[0] + "', 5, 'cdc')", "function stock_receive"},
			{"SELECT stock_expire()", "function stock_expire"},
			{"UPDATE inventory_levels SET on_hand = 0 WHERE product_id = '" + f.product + "'", "table inventory_levels"},
			{"SELECT count(*) FROM stock_reservations", "table stock_reservations"},
			{"SELECT count(*) FROM products", "table products"},
			{"CREATE PUBLICATION " + testenv.Name(t, "pub") + " FOR TABLE inventory_levels", "database stock"},
		} {
			_, err := cdc.Exec(ctx, tc.sql)
			denied(t, tc.sql, err, tc.object)
		}
		r := psql(t, s, testenv.PGCDC, s.Password(t, "pg", testenv.PGCDC),
			"SELECT * FROM stock_receive('"+f.product+"', '"+f.wh[0]+"', 5, 'cdc')")
		refusedRun(t, "psql stock_receive as the CDC role", r, "permission denied for function stock_receive")
	})

	t.Run("reads the published table and its ledger", func(t *testing.T) {
		var n int
		if err := cdc.QueryRow(ctx, "SELECT count(*) FROM inventory_levels WHERE product_id = $1", f.product).Scan(&n); err != nil {
			t.Errorf("reading inventory_levels: %v", err)
		}
		slot := testenv.Name(t, "securetest")
		t.Cleanup(func() {
			_, _ = own.Exec(context.Background(), "DELETE FROM stock_producer_slots WHERE slot_name = $1", slot)
		})
		for _, sql := range []string{
			"INSERT INTO stock_producer_slots (slot_name, owner, confirmed_lsn) VALUES ($1, 'securetest', '0/0')",
			"UPDATE stock_producer_slots SET confirmed_lsn = '0/1' WHERE slot_name = $1",
		} {
			if _, err := cdc.Exec(ctx, sql, slot); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})

	t.Run("streams the publication and may ask for a resnapshot", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		repl, err := pgconn.Connect(sctx, s.PostgresURL(t, testenv.PGCDC)+"&replication=database")
		if err != nil {
			t.Fatalf("replication connection as %s: %v", testenv.PGCDC, err)
		}
		defer repl.Close(context.Background())
		slot := testenv.Name(t, "securetest")
		// Temporary: it goes with the connection, whatever happens to the test.
		if _, err := pglogrepl.CreateReplicationSlot(sctx, repl, slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication}); err != nil {
			t.Fatalf("creating a slot as %s: %v", testenv.PGCDC, err)
		}
		if err := pglogrepl.StartReplication(sctx, repl, slot, 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names 'stock_pub'", "messages 'true'"},
		}); err != nil {
			t.Fatalf("streaming stock_pub as %s: %v", testenv.PGCDC, err)
		}
		if _, err := inventorydb.Receive(ctx, w, f.product, f.wh[0], 4, "po-cdc"); err != nil {
			t.Fatal(err)
		}
		var lsn string
		if err := cdc.QueryRow(ctx, "SELECT stock_request_resnapshot(ARRAY[$1::text])::text", f.product).Scan(&lsn); err != nil {
			t.Fatalf("asking for a resnapshot as %s: %v", testenv.PGCDC, err)
		}
		sawRow, sawSignal := false, false
		for !sawRow || !sawSignal {
			raw, err := repl.ReceiveMessage(sctx)
			if err != nil {
				t.Fatalf("receiving (row seen %v, resnapshot seen %v): %v", sawRow, sawSignal, err)
			}
			switch m := raw.(type) {
			case *pgproto3.ErrorResponse:
				t.Fatalf("replication error: %v", pgconn.ErrorResponseToPgError(m))
			case *pgproto3.CopyData:
				if len(m.Data) == 0 || m.Data[0] != pglogrepl.XLogDataByteID {
					continue
				}
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					t.Fatal(err)
				}
				msg, err := pglogrepl.Parse(xld.WALData)
				if err != nil {
					t.Fatal(err)
				}
				switch msg := msg.(type) {
				case *pglogrepl.InsertMessage:
					sawRow = sawRow || hasColumn(msg.Tuple, f.product)
				case *pglogrepl.UpdateMessage:
					sawRow = sawRow || hasColumn(msg.NewTuple, f.product)
				case *pglogrepl.LogicalDecodingMessage:
					var req struct {
						ProductIDs []string `json:"product_ids"`
					}
					sawSignal = sawSignal || (msg.Prefix == "stock.resnapshot" && msg.Transactional &&
						json.Unmarshal(msg.Content, &req) == nil && slices.Equal(req.ProductIDs, []string{f.product}))
				}
			}
		}
	})
}

func hasColumn(tuple *pglogrepl.TupleData, value string) bool {
	if tuple == nil {
		return false
	}
	for _, c := range tuple.Columns {
		if string(c.Data) == value {
			return true
		}
	}
	return false
}

// The CDC role (the producer's, with REPLICATION) logs in with its password
// and a client certificate of the local CA whose CN is its name
// (pg_hba.conf: clientcert=verify-full). Its password alone, or with
// another role's certificate, opens nothing (the server then says only
// that authentication failed; its log says "CN mismatch"); psql, a client
// not ours, is held to the same.
func TestPostgresCDCRoleNeedsItsCertificate(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "pg", testenv.PGCDC)
	withCert := func(crt, key string) func(*pgx.ConnConfig) {
		return func(c *pgx.ConnConfig) {
			pair, err := tls.LoadX509KeyPair(crt, key)
			if err != nil {
				t.Fatal(err)
			}
			c.TLSConfig.Certificates = []tls.Certificate{pair}
			c.Fallbacks = nil
		}
	}
	t.Run("pgx", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(s.PostgresURL(t, testenv.PGCDC))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("the CDC role with its certificate: %v", err)
		}
		var dn string
		err = conn.QueryRow(ctx, `SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&dn)
		conn.Close(ctx)
		if err != nil || !strings.Contains(dn, "CN=stock_cdc") {
			t.Errorf("the server saw client DN %q (%v), want CN=stock_cdc", dn, err)
		}
		for _, tc := range []struct {
			name   string
			change func(*pgx.ConnConfig)
			want   string
		}{
			{"password without a certificate", func(c *pgx.ConnConfig) { c.TLSConfig.Certificates = nil; c.Fallbacks = nil },
				"certificate"},
			// The server tells the client only that authentication
			// failed; its log says why ("CN mismatch").
			{"password with the writer's certificate", withCert(s.WriterCert, s.WriterKey), "authentication failed"},
			{"certificate with a wrong password", func(c *pgx.ConnConfig) { c.Password = "not-the-password"; c.Fallbacks = nil },
				"password authentication failed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				took, err := pgxConnect(t, s, testenv.PGCDC, tc.change)
				refused(t, tc.name, err, "", took, tc.want)
			})
		}
	})
	t.Run("psql", func(t *testing.T) {
		conn := func(crt, key string) string {
			u, err := url.Parse(psqlConn(s, testenv.PGCDC, "", "verify-full"))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Del("sslcert")
			q.Del("sslkey")
			if crt != "" {
				q.Set("sslcert", crt)
				q.Set("sslkey", key)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
		psqlAs := func(dsn string) result {
			return run(t, []string{"PGPASSWORD=" + pw}, tool(t, "psql"), "-X", "-At", "-d", dsn, "-c", "SELECT current_user")
		}
		if r := psqlAs(conn(s.CDCCert, s.CDCKey)); r.err != nil || r.out != testenv.PGCDC+"\n" {
			t.Errorf("psql as the CDC role with its certificate: %q %v", r.out, r.err)
		}
		refusedRun(t, "psql without a certificate", psqlAs(conn("", "")), "certificate")
		refusedRun(t, "psql with the writer's certificate", psqlAs(conn(s.WriterCert, s.WriterKey)), "authentication failed")
	})
}
