package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/stockpipe/stock/internal/testenv"
)

func TestClient(t *testing.T) {
	certs := testenv.NewCerts(t)
	tests := []struct {
		name    string
		cfg     Config
		wantNil bool
		wantErr []string
		check   func(*tls.Config) bool
	}{
		{name: "off", cfg: Config{MinVersion: "1.2"}, wantNil: true},
		{name: "on with the system's roots", cfg: Config{Enabled: true},
			check: func(c *tls.Config) bool { return c.RootCAs == nil && c.MinVersion == tls.VersionTLS12 }},
		{name: "a CA implies TLS", cfg: Config{CAFile: certs.CAFile, ServerName: "kafka.internal", MinVersion: "1.3"},
			check: func(c *tls.Config) bool {
				return c.RootCAs != nil && c.ServerName == "kafka.internal" && c.MinVersion == tls.VersionTLS13
			}},
		{name: "mutual TLS", cfg: Config{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey},
			check: func(c *tls.Config) bool { return len(c.Certificates) == 1 }},
		{name: "every problem at once", cfg: Config{CAFile: certs.ClientKey, CertFile: certs.ClientCert, MinVersion: "1.0"},
			wantErr: []string{"no PEM certificate", "both its certificate and its key", "min version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.Client()
			if len(tt.wantErr) > 0 {
				for _, w := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c == nil) != tt.wantNil || (c != nil && tt.check != nil && !tt.check(c)) {
				t.Errorf("config %+v", c)
			}
		})
	}
}
