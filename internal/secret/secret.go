// Package secret reads a secret given either directly (a flag or an
// environment variable) or as the path of a file holding it (a --x-file
// flag or an X_FILE variable: a mounted Kubernetes or Docker secret, a
// file a vault agent rotates). It reads the file each time it is asked,
// so that a client that asks at every authentication follows a rotation
// without a restart. It never logs and never reads the environment.
package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Value is a secret given directly. Printed, logged or marshalled it shows
// only whether it is set, so that a config struct holding one is safe to
// log whole; Reveal is the one way to its text.
type Value string

// Reveal is the secret's text, for the client that sends it.
func (v Value) Reveal() string { return string(v) }

// String is "[redacted]" when v is set, "" when not.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from showing the text.
func (v Value) GoString() string { return v.String() }

// MarshalJSON, MarshalText and LogValue show v as String does.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
func (v Value) LogValue() slog.Value         { return slog.StringValue(v.String()) }

// Source is one secret: Value, or the contents of File. At most one is
// set; neither means no secret.
type Source struct {
	Value Value
	File  string
}

// Set reports whether a secret was given.
func (s Source) Set() bool { return s.Value != "" || s.File != "" }

// Read returns the secret: Value, or File's contents read now, without the
// line ending an editor or `echo` leaves (a password never ends in one).
func (s Source) Read() (string, error) {
	if s.File == "" {
		return s.Value.Reveal(), nil
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		// The path is not secret; the contents never reach an error.
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", s.File)
	}
	return v, nil
}

// Validate reports what is wrong with s, named name (the flag): both forms
// given, or a file that cannot be read now.
func (s Source) Validate(name string) error {
	if s.Value != "" && s.File != "" {
		return fmt.Errorf("%s: give the secret or a file holding it (%s-file), not both", name, name)
	}
	if _, err := s.Read(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Lines reads a list of secrets (API keys): Value split at commas, or
// File's lines (commas also separate), blanks and lines starting with #
// skipped.
func (s Source) Lines() ([]string, error) {
	v, err := s.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.Split(line, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	if s.Set() && len(out) == 0 {
		return nil, errors.New("no secret in the list")
	}
	return out, nil
}
