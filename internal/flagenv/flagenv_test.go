package flagenv

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// group is a flag group a program embeds, with its own checks.
type group struct {
	Addr string `name:"addr" env:"TEST_FLAGENV_ADDR" default:"a:1" help:"Address."`
}

func (g group) Validate() error {
	if g.Addr == "" {
		return errors.New("no address")
	}
	return nil
}

type target struct {
	Name  string `name:"name" env:"TEST_FLAGENV_NAME,TEST_FLAGENV_OLD_NAME" default:"${name}" help:"Name."`
	Count int    `name:"count" env:"TEST_FLAGENV_COUNT" default:"1" help:"Count."`
	Group group  `embed:""`
}

func (t target) Validate() error {
	var errs []error
	if t.Count < 1 {
		errs = append(errs, errors.New("count below 1"))
	}
	if t.Group.Addr == "" {
		errs = append(errs, errors.New("no address"))
	}
	return errors.Join(errs...)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    target
		wantErr []string
	}{
		{name: "defaults", want: target{Name: "n", Count: 1, Group: group{Addr: "a:1"}}},
		{name: "environment fallback", env: map[string]string{"TEST_FLAGENV_NAME": "e", "TEST_FLAGENV_ADDR": " b:2 "},
			want: target{Name: "e", Count: 1, Group: group{Addr: "b:2"}}},
		{name: "second variable", env: map[string]string{"TEST_FLAGENV_OLD_NAME": "old"},
			want: target{Name: "old", Count: 1, Group: group{Addr: "a:1"}}},
		{name: "flag beats environment", args: []string{"--name", "f", "--addr", "c:3"},
			env:  map[string]string{"TEST_FLAGENV_NAME": "e", "TEST_FLAGENV_ADDR": "b:2"},
			want: target{Name: "f", Count: 1, Group: group{Addr: "c:3"}}},
		{name: "every problem, as a configuration problem", args: []string{"--count", "0", "--addr", ""},
			wantErr: []string{"invalid configuration", "count below 1", "no address"}},
		{name: "syntax", args: []string{"--count", "x"}, wantErr: []string{"parsing flags", "--count"}},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: []string{"parsing flags", "--nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got target
			kctx, err := Parse(&got, tt.args, func(k string) string { return tt.env[k] }, io.Discard, kong.Vars{"name": "n"})
			if len(tt.wantErr) > 0 {
				for _, w := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || kctx == nil || got != tt.want {
				t.Errorf("got %+v (context %v), %v; want %+v", got, kctx != nil, err, tt.want)
			}
		})
	}
}

// --help prints to the writer given, with each flag's variables, and
// returns neither a context nor an error: the caller just stops.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	kctx, err := Parse(&target{}, []string{"--help"}, func(string) string { return "" }, &out, kong.Vars{"name": "n"})
	if kctx != nil || err != nil {
		t.Fatalf("--help: context %v, error %v; want neither", kctx != nil, err)
	}
	for _, w := range []string{"--name=\"n\"", "$TEST_FLAGENV_NAME", "--addr=\"a:1\"", "$TEST_FLAGENV_ADDR"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help lacks %q:\n%s", w, out.String())
		}
	}
}
