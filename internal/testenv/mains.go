package testenv

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// What the three programs' main tests share: each program's run takes its
// arguments, a getenv and a writer for its logs, so a test drives it like
// the shell does and reads what it logged.

// Getenv is a getenv that answers from m only.
func Getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// ClearStockEnv unsets the STOCK_* variables for the test: kong reads `env`
// tags from the process environment as well as through getenv, and `make
// test` exports some, so "defaults" would test the caller's environment.
func ClearStockEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "STOCK_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// SyncBuffer is a log sink that a running program writes while the test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ConfigCase is one row of a program's configuration table: the arguments
// and environment given, then either the check the parsed configuration
// must pass or the phrases its error must name, every one of them (a
// program reports all of its problems at once).
type ConfigCase[C any] struct {
	Name    string
	Args    []string
	Env     map[string]string
	Check   func(C) bool
	WantErr []string
}

// RunConfigCases parses each case's arguments and environment and checks
// the outcome.
func RunConfigCases[C any](t *testing.T, cases []ConfigCase[C], parse func(args []string, getenv func(string) string) (C, error)) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			cfg, err := parse(tt.Args, Getenv(tt.Env))
			if len(tt.WantErr) > 0 {
				for _, w := range tt.WantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || !tt.Check(cfg) {
				t.Errorf("config %+v, %v", cfg, err)
			}
		})
	}
}
