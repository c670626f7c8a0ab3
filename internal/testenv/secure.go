package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// SecureStack is the secure profile of the local stack (STACK_SECURE=1
// scripts/stack.sh up; docs/security.md): TLS everywhere, a password per
// principal. Tests find it through the STOCK_SECURE_* variables that
// `STACK_SECURE=1 scripts/stack.sh env` prints and scripts/test.sh exports;
// unset, they default to the profile's own defaults (.local/secure of this
// repository, ports +10000).
type SecureStack struct {
	CAFile       string   // the local CA every client trusts
	PGAddr       string   // host:port
	KafkaBrokers []string // SASL_SSL listener
	KafkaLibs    string   // the broker's jars, for the distribution's own command line tools
	RedisAddr    string   // TLS port
	// CDCCert and CDCKey are the client certificate (CN=stock_cdc) and key
	// the CDC role must show PostgreSQL besides its password; WriterCert
	// and WriterKey another role's, which must not open the CDC role.
	CDCCert, CDCKey       string
	WriterCert, WriterKey string
	// KafkaMTLSBrokers is the broker's listener that takes a client
	// certificate instead of SCRAM; ProjectorCert and ProjectorKey are the
	// certificate (CN=stock-projector) that is the projector's principal there.
	KafkaMTLSBrokers            []string
	ProjectorCert, ProjectorKey string
	passwords                   map[string]string
}

// The principals of the secure profile, as scripts/secure/stack-secure.sh
// creates them.
const (
	PGOwner         = "stock"
	PGWriter        = "stock_writer"
	PGCDC           = "stock_cdc"
	KafkaProducer   = "stock-producer"
	KafkaProjector  = "stock-projector"
	RedisProjector  = "stock-projector"
	RedisAPI        = "stock-api"
	SecureDatabase  = "stock"
	SecureStartHint = "start it with STACK_SECURE=1 scripts/stack.sh up"
)

// secureDefaultDir is <repo>/.local/secure, found from this file's place.
func secureDefaultDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".local", "secure")
}

// Secure returns the secure stack, after checking that its files are there
// and its three ports answer. When it is not up the test is skipped on a
// developer's machine and fails in CI (CI set), where make test starts it.
func Secure(t testing.TB) *SecureStack {
	t.Helper()
	dir := secureDefaultDir()
	secret := filepath.Join(dir, "secrets")
	s := &SecureStack{
		CAFile:       getenv("STOCK_SECURE_CA_FILE", filepath.Join(dir, "tls", "ca.crt")),
		PGAddr:       getenv("STOCK_SECURE_PG_ADDR", "127.0.0.1:15432"),
		KafkaBrokers: strings.Split(getenv("STOCK_SECURE_KAFKA_BROKERS", "127.0.0.1:19092"), ","),
		KafkaLibs:    getenv("STOCK_SECURE_KAFKA_LIBS", filepath.Join(dir, "kafka", "libs")),
		RedisAddr:    getenv("STOCK_SECURE_REDIS_ADDR", "127.0.0.1:16379"),
		CDCCert:      getenv("STOCK_SECURE_PG_CDC_CERT_FILE", filepath.Join(dir, "tls", "client-"+PGCDC+".crt")),
		CDCKey:       getenv("STOCK_SECURE_PG_CDC_KEY_FILE", filepath.Join(dir, "tls", "client-"+PGCDC+".key")),
		passwords:    map[string]string{},
	}
	s.KafkaMTLSBrokers = strings.Split(getenv("STOCK_SECURE_KAFKA_MTLS_BROKERS", "127.0.0.1:19094"), ",")
	s.ProjectorCert = getenv("STOCK_SECURE_KAFKA_PROJECTOR_CERT_FILE", filepath.Join(dir, "tls", "client-"+KafkaProjector+".crt"))
	s.ProjectorKey = getenv("STOCK_SECURE_KAFKA_PROJECTOR_KEY_FILE", filepath.Join(dir, "tls", "client-"+KafkaProjector+".key"))
	s.WriterCert = filepath.Join(filepath.Dir(s.CDCCert), "client-"+PGWriter+".crt")
	s.WriterKey = filepath.Join(filepath.Dir(s.CDCCert), "client-"+PGWriter+".key")
	files := map[string]string{
		"pg/" + PGOwner:          getenv("STOCK_SECURE_PG_OWNER_PASSWORD_FILE", filepath.Join(secret, "pg-stock.password")),
		"pg/" + PGWriter:         getenv("STOCK_SECURE_PG_WRITER_PASSWORD_FILE", filepath.Join(secret, "pg-stock_writer.password")),
		"pg/" + PGCDC:            getenv("STOCK_SECURE_PG_CDC_PASSWORD_FILE", filepath.Join(secret, "pg-stock_cdc.password")),
		"kafka/" + KafkaProducer: getenv("STOCK_SECURE_KAFKA_PRODUCER_PASSWORD_FILE", filepath.Join(secret, "kafka-stock-producer.password")),
		"kafka/" + KafkaProjector: getenv("STOCK_SECURE_KAFKA_PROJECTOR_PASSWORD_FILE",
			filepath.Join(secret, "kafka-stock-projector.password")),
		"redis/" + RedisProjector: getenv("STOCK_SECURE_REDIS_PROJECTOR_PASSWORD_FILE",
			filepath.Join(secret, "redis-stock-projector.password")),
		"redis/" + RedisAPI: getenv("STOCK_SECURE_REDIS_API_PASSWORD_FILE", filepath.Join(secret, "redis-stock-api.password")),
	}
	var problems []string
	for key, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("reading the %s password: %v", key, err))
			continue
		}
		s.passwords[key] = strings.TrimSpace(string(b))
	}
	for what, f := range map[string]string{"the CA": s.CAFile, "the CDC role's certificate": s.CDCCert, "its key": s.CDCKey,
		"the writer's certificate": s.WriterCert, "the projector's certificate": s.ProjectorCert} {
		if _, err := os.Stat(f); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", what, err))
		}
	}
	problems = append(problems, unanswered(s.PGAddr, s.KafkaBrokers[0], s.RedisAddr)...)
	if len(problems) > 0 {
		notUp(t, fmt.Sprintf("the secure stack is not up (%s): %s", SecureStartHint, strings.Join(problems, "; ")))
	}
	return s
}

// Password is the password of a principal: service "pg", "kafka" or
// "redis" and one of the names above.
func (s *SecureStack) Password(t testing.TB, service, user string) string {
	t.Helper()
	pw, ok := s.passwords[service+"/"+user]
	if !ok {
		t.Fatalf("no password for %s user %s", service, user)
	}
	return pw
}

// TLSConfig trusts the local CA only and checks the server's name
// (serverName; empty: the host dialled).
func (s *SecureStack) TLSConfig(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// PostgresURL is the stock database as role, over TLS checked against the
// local CA and the host name (sslmode=verify-full); the CDC role shows its
// client certificate too, which PostgreSQL requires of it.
func (s *SecureStack) PostgresURL(t testing.TB, role string) string {
	t.Helper()
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {s.CAFile}}
	if role == PGCDC {
		q.Set("sslcert", s.CDCCert)
		q.Set("sslkey", s.CDCKey)
	}
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(role, s.Password(t, "pg", role)),
		Host: s.PGAddr, Path: "/" + SecureDatabase, RawQuery: q.Encode(),
	}
	return u.String()
}

// unanswered lists the addresses that refuse a TCP connection, with why.
func unanswered(addrs ...string) []string {
	var out []string
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", addr, err))
			continue
		}
		c.Close()
	}
	return out
}

// notUp skips the test on a developer's machine and fails it in CI (CI
// set), where make test starts every profile of the stack.
func notUp(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
