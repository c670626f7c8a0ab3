package schemas

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// RegistryConfig is how a program reaches the schema registry: its URL,
// basic auth (user and password: Confluent Cloud's API key and secret) or
// a bearer token, a CA for https, and whether the program may register
// schemas at all. Flag and environment names are the producer's interface:
// never rename them. Secrets are secret.Value, safe to log whole.
type RegistryConfig struct {
	URL          string       `name:"schema-registry-url" env:"STOCK_SCHEMA_REGISTRY_URL" default:"" help:"Confluent-compatible schema registry; values then carry its schema ids (empty: id 0, the .avsc of this version). User info in the URL is taken as basic auth and never logged."`
	Username     string       `name:"schema-registry-username" env:"STOCK_SCHEMA_REGISTRY_USERNAME" help:"Basic auth user of the registry (Confluent Cloud: the API key)."`
	Password     secret.Value `name:"schema-registry-password" env:"STOCK_SCHEMA_REGISTRY_PASSWORD" help:"Basic auth password (Confluent Cloud: the API secret). Prefer --schema-registry-password-file or the environment."`
	PasswordFile string       `name:"schema-registry-password-file" env:"STOCK_SCHEMA_REGISTRY_PASSWORD_FILE" help:"File holding the basic auth password, read at every request."`
	Token        secret.Value `name:"schema-registry-token" env:"STOCK_SCHEMA_REGISTRY_TOKEN" help:"Bearer token of the registry (instead of basic auth)."`
	TokenFile    string       `name:"schema-registry-token-file" env:"STOCK_SCHEMA_REGISTRY_TOKEN_FILE" help:"File holding the bearer token, read at every request (an agent may rewrite it)."`
	CAFile       string       `name:"schema-registry-ca-file" env:"STOCK_SCHEMA_REGISTRY_CA_FILE" help:"PEM bundle of the CAs that sign an https registry's certificate (empty: the system's roots)."`
	LookupOnly   bool         `name:"schema-registry-lookup-only" env:"STOCK_SCHEMA_REGISTRY_LOOKUP_ONLY" help:"Only look up the ids of schemas registered by the subjects' owner: never register a schema nor set a subject's compatibility (a managed registry where another team owns the subjects). A schema that is not registered is a startup error."`
}

func (c RegistryConfig) password() secret.Source {
	return secret.Source{Value: c.Password, File: c.PasswordFile}
}

func (c RegistryConfig) token() secret.Source {
	return secret.Source{Value: c.Token, File: c.TokenFile}
}

// split is the URL without its user info, and the user info (also with
// an error about the rest).
func (c RegistryConfig) split() (string, *url.Userinfo, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		// url's error quotes the URL: keep its password out.
		return "", nil, fmt.Errorf("schema registry url %s: not a URL", redact.URL(c.URL))
	}
	info := u.User
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", info, fmt.Errorf("schema registry url %s: scheme must be http or https", redact.URL(c.URL))
	}
	u.User = nil
	return u.String(), info, nil
}

// Validate reports every problem of c, its files read now. An empty URL
// (no registry) is valid whatever else is set.
func (c RegistryConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	_, info, err := c.split()
	if err != nil {
		errs = append(errs, err)
	}
	basic := c.Username != "" || c.password().Set() || info != nil
	if info != nil && (c.Username != "" || c.password().Set()) {
		errs = append(errs, errors.New("schema registry: user info in the URL and --schema-registry-username/password: give one"))
	}
	if basic && c.token().Set() {
		errs = append(errs, errors.New("schema registry: basic auth and a bearer token: give one"))
	}
	if c.Username == "" && c.password().Set() {
		errs = append(errs, errors.New("schema registry: a password without --schema-registry-username"))
	}
	if err := c.password().Validate("--schema-registry-password"); err != nil {
		errs = append(errs, err)
	}
	if err := c.token().Validate("--schema-registry-token"); err != nil {
		errs = append(errs, err)
	}
	if c.CAFile != "" {
		if _, err := tlsconf.Pool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("schema registry: %w", err))
		}
	}
	return errors.Join(errs...)
}

// NewRegistryClient returns a client of the Confluent-compatible schema
// registry c.URL: the base of its Confluent REST API, such as
// http://127.0.0.1:8081 for Confluent's or Karapace, and
// http://127.0.0.1:8081/apis/ccompat/v7 for Apicurio (scripts/registry.sh).
// Credentials are set on each request (a file is read then), never kept in
// the URL, so that no error the client returns can quote them.
func NewRegistryClient(c RegistryConfig) (*sr.Client, error) {
	base, info, err := c.split()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if c.CAFile != "" {
		pool, err := tlsconf.Pool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	user, pw, tok := c.Username, c.password(), c.token()
	if info != nil {
		user = info.Username()
		p, _ := info.Password()
		pw = secret.Source{Value: secret.Value(p)}
	}
	opts := []sr.ClientOpt{sr.URLs(base), sr.HTTPClient(&http.Client{Timeout: RegistryTimeout, Transport: transport})}
	if user != "" || tok.Set() {
		opts = append(opts, sr.PreReq(func(req *http.Request) error {
			if tok.Set() {
				t, err := tok.Read()
				if err != nil {
					return fmt.Errorf("schema registry token: %w", err)
				}
				req.Header.Set("Authorization", "Bearer "+t)
				return nil
			}
			p, err := pw.Read()
			if err != nil {
				return fmt.Errorf("schema registry password: %w", err)
			}
			req.SetBasicAuth(user, p)
			return nil
		}))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating schema registry client for %s: %w", base, err)
	}
	return cl, nil
}

// MarshalJSON is c for a configuration logged whole: the URL without its
// password, whether a secret is set, never what it is.
func (c RegistryConfig) MarshalJSON() ([]byte, error) {
	type view struct {
		URL, Username, Password, PasswordFile, Token, TokenFile, CAFile string
		LookupOnly                                                      bool
	}
	return json.Marshal(view{redact.URL(c.URL), c.Username, c.Password.String(), c.PasswordFile,
		c.Token.String(), c.TokenFile, c.CAFile, c.LookupOnly})
}

// Lookup makes codec frame each contract topic's values (a key of topics,
// produced to the topic its value names) with the id under which the
// subject's owner registered this package's schema, changing nothing in
// the registry: for a producer that is not the subjects' owner. A schema
// the subject does not hold is an error naming the subject, and codec keeps
// its previous ids.
func Lookup(ctx context.Context, client *sr.Client, codec *Codec, topics map[string]string) error {
	ids := make(map[string]uint32, len(topics))
	for _, contract := range slices.Sorted(maps.Keys(topics)) {
		text, ok := SchemaText(contract)
		if !ok {
			return fmt.Errorf("looking up schemas: %q is not a topic of the contract", contract)
		}
		subject := Subject(topics[contract])
		got, err := client.LookupSchema(ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
		if err != nil {
			return fmt.Errorf("looking up the %s schema under subject %s (lookup only: its owner must register it): %w", contract, subject, err)
		}
		if got.ID <= 0 || got.ID > 1<<31-1 {
			return fmt.Errorf("looking up the %s schema under subject %s: registry answered id %d", contract, subject, got.ID)
		}
		ids[contract] = uint32(got.ID)
	}
	for contract, id := range ids {
		codec.SetSchemaID(contract, id)
	}
	return nil
}
