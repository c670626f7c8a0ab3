package kafkaconn

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{name: "brokers", cfg: Config{Brokers: []string{"k1:9092", "k2:9092"}}},
		{name: "none", cfg: Config{}, wantErr: []string{"no broker"}},
		{name: "an empty one", cfg: Config{Brokers: []string{"k1:9092", ""}}, wantErr: []string{"broker 2 of 2 is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}

// Every caller appends its own options: one caller's must never show up
// in the next one's.
func TestOptsAreFreshPerCall(t *testing.T) {
	c := Config{Brokers: []string{"k1:9092"}}
	a := c.Opts()
	_ = append(a, nil)
	b := c.Opts()
	if len(b) != len(a) {
		t.Fatalf("second call has %d options, first %d", len(b), len(a))
	}
	if &a[0] == &b[0] {
		t.Fatal("two calls share their backing array")
	}
}
