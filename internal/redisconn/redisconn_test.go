package redisconn

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stockpipe/stock/internal/stockstore"
)

func TestClientConfig(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		wantAddrs   []string
		wantCluster bool
	}{
		{name: "one node", cfg: Config{Addr: "r:6379", Prefix: "p:"}, wantAddrs: []string{"r:6379"}},
		{name: "cluster seeds", cfg: Config{Addr: "r1:7000,r2:7001", Cluster: true, Prefix: "p:"},
			wantAddrs: []string{"r1:7000", "r2:7001"}, wantCluster: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := tt.cfg.ClientConfig()
			if !slices.Equal(cc.Addrs, tt.wantAddrs) || cc.Cluster != tt.wantCluster {
				t.Errorf("addrs %v cluster %v, want %v %v", cc.Addrs, cc.Cluster, tt.wantAddrs, tt.wantCluster)
			}
			if def := stockstore.DefaultClientConfig(); cc.ReadTimeout != def.ReadTimeout {
				t.Errorf("read timeout %s, want stockstore's default %s", cc.ReadTimeout, def.ReadTimeout)
			}
		})
	}
}

// One error names every problem: the address and the prefix.
func TestValidate(t *testing.T) {
	err := Config{Addr: "", Prefix: "a{b"}.Validate()
	for _, w := range []string{"empty address", "brace"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
	if err := (Config{Addr: "r:6379", Prefix: stockstore.DefaultPrefix}).Validate(); err != nil {
		t.Errorf("a valid config: %v", err)
	}
}

// The start log never carries the password.
func TestLogAttrsRedactPassword(t *testing.T) {
	got := fmt.Sprint(Config{Addr: "r:6379", Password: "s3cret-pass", Prefix: "p:"}.LogAttrs())
	if strings.Contains(got, "s3cret-pass") || !strings.Contains(got, "[redacted]") {
		t.Errorf("log attributes %s: want the password redacted", got)
	}
}
