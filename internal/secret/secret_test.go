package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		src     Source
		want    string
		wantErr string
	}{
		{name: "none", src: Source{}},
		{name: "value", src: Source{Value: "v"}, want: "v"},
		{name: "file without its line ending", src: Source{File: write(t, "pass word\r\n")}, want: "pass word"},
		{name: "empty file", src: Source{File: write(t, "\n")}, wantErr: "is empty"},
		{name: "missing file", src: Source{File: "/nonexistent/secret"}, wantErr: "reading secret file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.Read()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if err := (Source{Value: "v", File: write(t, "f")}).Validate("--x"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both forms: %v", err)
	}
}

// A file is read at every call: a rotated secret is seen at once.
func TestReadFollowsRotation(t *testing.T) {
	p := write(t, "one")
	s := Source{File: p}
	if v, _ := s.Read(); v != "one" {
		t.Fatalf("first read %q", v)
	}
	if err := os.WriteFile(p, []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Read(); v != "two" {
		t.Fatalf("after rotation %q", v)
	}
}

func TestLines(t *testing.T) {
	got, err := Source{File: write(t, "# keys\nkey-one\n\nkey-two, key-three\n")}.Lines()
	if err != nil || !slices.Equal(got, []string{"key-one", "key-two", "key-three"}) {
		t.Fatalf("Lines = %v, %v", got, err)
	}
	if _, err := (Source{File: write(t, "# none\n")}).Lines(); err == nil {
		t.Error("a list file without a key: no error")
	}
}

// A Value shows only whether it is set, however it is printed.
func TestValueNeverPrints(t *testing.T) {
	v := Value("s3cret")
	j, _ := json.Marshal(struct{ P Value }{v})
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "p", v)
	for _, out := range []string{fmt.Sprint(v), fmt.Sprintf("%v %s %q %+v %#v %x", v, v, v, v, v, v), string(j), b.String()} {
		if strings.Contains(out, "s3cret") || strings.Contains(out, fmt.Sprintf("%x", "s3cret")) {
			t.Errorf("printed: %s", out)
		}
	}
	if v.Reveal() != "s3cret" || Value("").String() != "" {
		t.Error("Reveal or the empty value")
	}
}
