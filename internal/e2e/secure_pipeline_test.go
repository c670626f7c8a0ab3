package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// The pipeline on the secure profile of the stack (STACK_SECURE=1
// scripts/stack.sh up; docs/security.md): every connection over TLS checked
// against the stack's CA, each program as its own least-privilege
// principal, configured the way an operator would, through the
// environment, some secrets given directly and some as files. The
// topics, the consumer group, the producer's transactional id prefix and
// the Redis key pattern are the ones the stack's ACLs name, shared by every
// run: each run has its own slot, product and key prefix.

// secureStart runs a program as start does, but with exactly env as its
// environment (nothing inherited: the test process's plaintext STOCK_*
// variables must not reach it).
func secureStart(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t, name), args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("---- %s output (tail) ----\n%s", name, b)
		}
	})
	return p
}

// secureSetup is the secure stack with the settings each program gets.
type secureSetup struct {
	s       *testenv.SecureStack
	slot    string
	prefix  string // Redis key prefix, under the stack's stock:* pattern
	apiKey  string
	apiCert *testenv.Certs
	// secrets are every secret the programs are given, for the log check.
	secrets map[string]string
}

func newSecureSetup(t *testing.T) *secureSetup {
	t.Helper()
	s := testenv.Secure(t)
	name := testenv.Name(t, "e2e_secure")
	st := &secureSetup{s: s, slot: name, prefix: "stock:" + name + ":", apiKey: "key-" + testenv.Name(t, "api"),
		apiCert: testenv.NewCerts(t), secrets: map[string]string{}}
	for _, p := range [][2]string{{"pg", testenv.PGCDC}, {"kafka", testenv.KafkaProducer}, {"kafka", testenv.KafkaProjector},
		{"redis", testenv.RedisProjector}, {"redis", testenv.RedisAPI}} {
		st.secrets[p[0]+" "+p[1]] = s.Password(t, p[0], p[1])
	}
	st.secrets["api key"] = st.apiKey
	return st
}

// passwordFile writes a principal's password into a file of the test's.
func (st *secureSetup) passwordFile(t *testing.T, service, user string) string {
	return testenv.SecretFile(t, service+"-"+user, st.s.Password(t, service, user))
}

// kafkaEnv is the Kafka settings of principal user, the password as a
// file or directly.
func (st *secureSetup) kafkaEnv(t *testing.T, user string, asFile bool) []string {
	env := []string{"STOCK_KAFKA_BROKERS=" + strings.Join(st.s.KafkaBrokers, ","), "STOCK_KAFKA_TLS_CA_FILE=" + st.s.CAFile,
		"STOCK_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "STOCK_KAFKA_SASL_USERNAME=" + user}
	if asFile {
		return append(env, "STOCK_KAFKA_SASL_PASSWORD_FILE="+st.passwordFile(t, "kafka", user))
	}
	return append(env, "STOCK_KAFKA_SASL_PASSWORD="+st.s.Password(t, "kafka", user))
}

// redisEnv is the Redis settings of ACL user user.
func (st *secureSetup) redisEnv(t *testing.T, user string, asFile bool) []string {
	env := []string{"STOCK_REDIS_ADDR=" + st.s.RedisAddr, "STOCK_REDIS_TLS_CA_FILE=" + st.s.CAFile,
		"STOCK_REDIS_USERNAME=" + user, "STOCK_REDIS_PREFIX=" + st.prefix}
	if asFile {
		return append(env, "STOCK_REDIS_PASSWORD_FILE="+st.passwordFile(t, "redis", user))
	}
	return append(env, "STOCK_REDIS_PASSWORD="+st.s.Password(t, "redis", user))
}

// producerEnv: the CDC role's password inside the URL (the start log must
// hide it), Kafka's from a file.
func (st *secureSetup) producerEnv(t *testing.T) []string {
	return append(st.kafkaEnv(t, testenv.KafkaProducer, true),
		"STOCK_PG_URL="+st.s.PostgresURL(t, testenv.PGCDC), "STOCK_SLOT="+st.slot,
		"STOCK_PRODUCER_STATE_DIR="+t.TempDir(), "STOCK_PRODUCER_METRICS_ADDR=", "STOCK_LOG_LEVEL=debug")
}

// projectorEnv: Kafka's password directly, Redis's from a file.
func (st *secureSetup) projectorEnv(t *testing.T, metrics string) []string {
	return slices.Concat(st.kafkaEnv(t, testenv.KafkaProjector, false), st.redisEnv(t, testenv.RedisProjector, true),
		[]string{"STOCK_PROJECTOR_METRICS_ADDR=" + metrics, "STOCK_LOG_LEVEL=debug"})
}

// apiEnv: Redis's password and the API key directly; HTTPS with a key
// required on /v1/.
func (st *secureSetup) apiEnv(t *testing.T, addr string) []string {
	return append(st.redisEnv(t, testenv.RedisAPI, false), "STOCK_API_ADDR="+addr, "STOCK_API_KEYS="+st.apiKey,
		"STOCK_API_REQUIRE_API_KEY=true", "STOCK_API_TLS_CERT_FILE="+st.apiCert.ServerCert,
		"STOCK_API_TLS_KEY_FILE="+st.apiCert.ServerKey, "STOCK_API_ACCESS_LOG=all", "STOCK_LOG_LEVEL=debug")
}

// connectAs connects to the secure database as role.
func (st *secureSetup) connectAs(t *testing.T, role string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), st.s.PostgresURL(t, role))
	if err != nil {
		t.Fatalf("connecting as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dropSlot removes what the producer left in PostgreSQL: its slot (the
// CDC role may, having REPLICATION; the owner may not) and its ledger row.
func (st *secureSetup) dropSlot(t *testing.T, own *pgx.Conn) {
	t.Cleanup(func() {
		ctx := context.Background()
		cdc, err := pgx.Connect(ctx, st.s.PostgresURL(t, testenv.PGCDC))
		if err == nil {
			testenv.Eventually(t, 15*time.Second, "slot "+st.slot+" to be dropped", func() string {
				_, err := cdc.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, st.slot)
				if err != nil {
					return err.Error()
				}
				return ""
			})
			cdc.Close(ctx)
		}
		_, _ = own.Exec(ctx, "DELETE FROM stock_producer_slots WHERE slot_name = $1", st.slot)
	})
}

// TestSecurePipeline writes as the warehouse role and reads the result
// through the API over HTTPS, every hop between authenticated and
// encrypted; then checks that no program logged any secret it was given.
func TestSecurePipeline(t *testing.T) {
	st := newSecureSetup(t)
	ctx := context.Background()
	own := st.connectAs(t, testenv.PGOwner)
	writer := st.connectAs(t, testenv.PGWriter)
	sku, wh := testenv.Name(t, "SKU"), testenv.Name(t, "WH")
	if err := inventorydb.AddProduct(ctx, own, sku, t.Name()); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.AddWarehouse(ctx, own, wh, t.Name()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the programs stopped (cleanups run last first)
		for _, q := range []string{"DELETE FROM inventory_levels WHERE product_id = $1", "DELETE FROM products WHERE product_id = $1"} {
			_, _ = own.Exec(context.Background(), q, sku)
		}
		_, _ = own.Exec(context.Background(), "DELETE FROM warehouses WHERE warehouse_id = $1", wh)
	})
	st.dropSlot(t, own)

	apiAddr, metrics := freePort(t), freePort(t)
	pj := secureStart(t, "projector", st.projectorEnv(t, metrics))
	qa := secureStart(t, "query-api", st.apiEnv(t, apiAddr))
	pr := secureStart(t, "producer", st.producerEnv(t))

	if _, err := inventorydb.Receive(ctx, writer, sku, wh, 7, "e2e-secure"); err != nil {
		t.Fatalf("receiving as %s: %v", testenv.PGWriter, err)
	}
	base := "https://" + apiAddr
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: st.apiCert.Pool(), MinVersion: tls.VersionTLS12}}}
	stock := func() (int, product) {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/stock/"+url.PathEscape(sku), nil)
		req.Header.Set("X-API-Key", st.apiKey)
		res, err := client.Do(req)
		if err != nil {
			return 0, product{}
		}
		defer res.Body.Close()
		var p product
		b, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(b, &p)
		return res.StatusCode, p
	}
	testenv.Eventually(t, 90*time.Second, "the write to reach the API", func() string {
		code, p := stock()
		if code == 200 && p.OnHand == 7 && p.warehouse(wh).OnHand == 7 {
			return ""
		}
		return fmt.Sprintf("%d %+v", code, p)
	})

	// The key is required, over HTTPS.
	if res, err := client.Get(base + "/v1/stock/" + url.PathEscape(sku)); err != nil || res.StatusCode != 401 {
		t.Errorf("without the API key: %v %v, want 401", res, err)
	} else {
		res.Body.Close()
	}

	// A delete reaches the API too, so that the run leaves a tombstone in
	// the shared topic instead of a product that no longer exists.
	if _, err := own.Exec(ctx, "DELETE FROM inventory_levels WHERE product_id = $1", sku); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the delete to reach the API", func() string {
		if code, p := stock(); code != 404 {
			return fmt.Sprintf("%d %+v", code, p)
		}
		return ""
	})

	for _, p := range []*proc{pr, pj, qa} {
		p.stop()
	}
	checkNoSecretLogged(t, st, pr, pj, qa)
}

// checkNoSecretLogged reads every line the programs wrote (debug level,
// every request logged) and fails on any secret they were given.
func checkNoSecretLogged(t *testing.T, st *secureSetup, procs ...*proc) {
	t.Helper()
	redacted := 0
	for _, p := range procs {
		b, err := os.ReadFile(p.out.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s logged nothing: nothing was checked", p.name)
		}
		for what, secret := range st.secrets {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s's log (%s) holds the %s", p.name, filepath.Base(p.out.Name()), what)
			}
		}
		redacted += strings.Count(string(b), "[redacted]")
	}
	if redacted == 0 {
		t.Error("no program logged a redacted secret: the start lines did not show the settings")
	}
}
