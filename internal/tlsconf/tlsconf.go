// Package tlsconf turns the TLS flags of one connection into a tls.Config:
// the CA bundle that signs the server's certificate, an optional client
// certificate (mutual TLS), the server name to check and the oldest
// version accepted. Kafka and Redis embed Config with their own flag and
// variable prefixes (kong `prefix`, `envprefix`); the schema registry and
// the query API's listener use it in code. It never skips verification:
// there is no flag for that, a test CA goes in the CA bundle.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Config is the TLS of one client connection. Names are relative: a
// program embeds it with a prefix, e.g. prefix:"kafka-"
// envprefix:"STOCK_KAFKA_" gives --kafka-tls-ca-file and
// STOCK_KAFKA_TLS_CA_FILE.
type Config struct {
	Enabled    bool   `name:"tls" env:"TLS" help:"Connect over TLS (implied by any other of these TLS settings)."`
	CAFile     string `name:"tls-ca-file" env:"TLS_CA_FILE" help:"PEM bundle of the CAs that sign the server's certificate (empty: the system's roots)."`
	CertFile   string `name:"tls-cert-file" env:"TLS_CERT_FILE" help:"Client certificate (PEM) for mutual TLS; with --*-tls-key-file."`
	KeyFile    string `name:"tls-key-file" env:"TLS_KEY_FILE" help:"Private key (PEM) of the client certificate."`
	ServerName string `name:"tls-server-name" env:"TLS_SERVER_NAME" help:"Name the server's certificate must hold (empty: the host dialled)."`
	MinVersion string `name:"tls-min-version" env:"TLS_MIN_VERSION" default:"1.2" enum:"1.2,1.3" help:"Oldest TLS version accepted."`
}

// On reports whether the connection uses TLS: asked for, or implied by a
// setting only TLS uses.
func (c Config) On() bool {
	return c.Enabled || c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != ""
}

// Validate reports what is wrong with c, its files read now.
func (c Config) Validate() error {
	_, err := c.Client()
	return err
}

// Client is the client side tls.Config of c, nil when c is off. The files
// are read once, here: a rotated CA or certificate takes a restart.
func (c Config) Client() (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	var errs []error
	cfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	switch c.MinVersion {
	case "", "1.2":
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		errs = append(errs, fmt.Errorf("tls: min version %q is not 1.2 or 1.3", c.MinVersion))
	}
	if c.CAFile != "" {
		pool, err := Pool(c.CAFile)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: loading the client certificate: %w", err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		errs = append(errs, errors.New("tls: a client certificate needs both its certificate and its key file"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Pool is the certificate pool of the PEM bundle in file.
func Pool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: reading the CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no PEM certificate in the CA bundle %s", file)
	}
	return pool, nil
}

// MarshalJSON adds whether TLS is on to the fields, for a configuration
// logged whole: Enabled alone reads false when a CA file turned TLS on.
func (c Config) MarshalJSON() ([]byte, error) {
	type fields Config // without this method
	return json.Marshal(struct {
		On bool
		fields
	}{c.On(), fields(c)})
}

// LogAttrs are c for a start log, each key after prefix: file paths and
// names, never key material.
func (c Config) LogAttrs(prefix string) []any {
	return []any{prefix + "tls", c.On(), prefix + "tls_ca_file", c.CAFile, prefix + "tls_cert_file", c.CertFile,
		prefix + "tls_key_file", c.KeyFile, prefix + "tls_server_name", c.ServerName, prefix + "tls_min_version", c.MinVersion}
}
