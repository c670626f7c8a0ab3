package schemas

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/stockpipe/stock/internal/testenv"
)

// tlsRegistry is srfake behind TLS signed by the test's CA, expecting
// auth (an Authorization header value; empty: none), and counting the
// requests that would change the registry.
func tlsRegistry(t *testing.T, certs *testenv.Certs, auth string) (*srfake.Registry, string, *atomic.Int64) {
	t.Helper()
	var opts []srfake.Option
	if auth != "" {
		opts = append(opts, srfake.WithAuth(auth))
	}
	fake := srfake.NewRegistry(opts...)
	var writes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || (r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/versions")) {
			writes.Add(1)
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	srv.TLS = certs.Server
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the unknown-CA case's handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return fake, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), &writes
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func TestRegistryAuthAndTLS(t *testing.T) {
	ctx := context.Background()
	certs := testenv.NewCerts(t)
	const pw = "registry-s3cret"

	t.Run("basic auth from the URL's user info", func(t *testing.T) {
		_, base, _ := tlsRegistry(t, certs, basic("key", pw))
		u, _ := url.Parse(base)
		u.User = url.UserPassword("key", pw)
		cl, err := NewRegistryClient(RegistryConfig{URL: u.String(), CAFile: certs.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		var codec Codec
		if err := Register(ctx, cl, &codec, contractTopics("t.")); err != nil {
			t.Fatalf("Register: %v", err)
		}
		// A wrong password: refused, and the error never quotes one.
		u.User = url.UserPassword("key", "wrong-"+pw)
		cl, _ = NewRegistryClient(RegistryConfig{URL: u.String(), CAFile: certs.CAFile})
		err = Register(ctx, cl, &codec, contractTopics("t."))
		if err == nil || strings.Contains(err.Error(), pw) {
			t.Fatalf("a wrong password: %v", err)
		}
	})

	t.Run("basic auth with a password file", func(t *testing.T) {
		_, base, _ := tlsRegistry(t, certs, basic("key", pw))
		cl, err := NewRegistryClient(RegistryConfig{URL: base, Username: "key", PasswordFile: testenv.SecretFile(t, "pw", pw), CAFile: certs.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		if err := Register(ctx, cl, &Codec{}, contractTopics("t.")); err != nil {
			t.Fatalf("Register: %v", err)
		}
	})

	t.Run("a bearer token file read at each request", func(t *testing.T) {
		fake, base, _ := tlsRegistry(t, certs, "Bearer token-one")
		file := testenv.SecretFile(t, "token", "token-one")
		cl, err := NewRegistryClient(RegistryConfig{URL: base, TokenFile: file, CAFile: certs.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Subjects(ctx); err != nil {
			t.Fatalf("with the token: %v", err)
		}
		if err := os.WriteFile(file, []byte("token-two\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Subjects(ctx); err == nil {
			t.Fatal("a rotated token the registry does not know was accepted: the file was not read again")
		}
		_ = fake
	})

	t.Run("a registry whose CA is not given", func(t *testing.T) {
		_, base, _ := tlsRegistry(t, certs, "")
		cl, err := NewRegistryClient(RegistryConfig{URL: base})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Subjects(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("an unknown CA: %v", err)
		}
	})
}

// Lookup only reads: it finds the ids the subjects' owner registered and
// writes nothing, and a subject without this schema is a clear error.
func TestLookupOnly(t *testing.T) {
	ctx := context.Background()
	certs := testenv.NewCerts(t)
	_, base, writes := tlsRegistry(t, certs, "")
	cl, err := NewRegistryClient(RegistryConfig{URL: base, CAFile: certs.CAFile, LookupOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	topics := contractTopics("owned.")

	var codec Codec
	err = Lookup(ctx, cl, &codec, topics)
	if err == nil || !strings.Contains(err.Error(), "owned.") || !strings.Contains(err.Error(), "its owner must register it") {
		t.Fatalf("Lookup before the owner registered: %v", err)
	}
	if len(codec.ids) != 0 {
		t.Fatalf("a failed Lookup set ids %v", codec.ids)
	}
	if writes.Load() != 0 {
		t.Fatalf("Lookup made %d writing requests", writes.Load())
	}

	var owner Codec // the subjects' owner registers them
	if err := Register(ctx, cl, &owner, topics); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	if err := Lookup(ctx, cl, &codec, topics); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if writes.Load() != before {
		t.Errorf("Lookup made %d writing requests", writes.Load()-before)
	}
	for contract, id := range owner.ids {
		if codec.ids[contract] != id {
			t.Errorf("%s: looked up id %d, registered %d", contract, codec.ids[contract], id)
		}
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	pwFile := testenv.SecretFile(t, "pw", "p")
	tests := []struct {
		name    string
		cfg     RegistryConfig
		wantErr []string
	}{
		{name: "no registry", cfg: RegistryConfig{Username: "ignored"}},
		{name: "basic", cfg: RegistryConfig{URL: "https://r", Username: "u", PasswordFile: pwFile}},
		{name: "token", cfg: RegistryConfig{URL: "https://r", Token: "t"}},
		{name: "everything wrong", cfg: RegistryConfig{URL: "ftp://u:p@r", Username: "u", Token: "t", CAFile: "/nonexistent"},
			wantErr: []string{"scheme must be http or https", "user info in the URL and", "basic auth and a bearer token", "reading the CA bundle"}},
		{name: "a password without a user", cfg: RegistryConfig{URL: "https://r", Password: "p"}, wantErr: []string{"without --schema-registry-username"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not say %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error quotes the URL's password: %v", err)
			}
		})
	}
}

// Logged or marshalled whole, the configuration shows no secret.
func TestRegistryConfigRedacts(t *testing.T) {
	c := RegistryConfig{URL: "https://key:url-s3cret@r/apis", Password: "pw-s3cret", Token: "tok-s3cret"}
	j, err := json.Marshal(struct{ R RegistryConfig }{c})
	if err != nil {
		t.Fatal(err)
	}
	if out := string(j); strings.Contains(out, "s3cret") || !strings.Contains(out, "[redacted]") {
		t.Errorf("%s: want every secret redacted", out)
	}
}
