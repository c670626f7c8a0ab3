package position

import (
	"errors"
	"fmt"
	"testing"
)

func TestStringParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		p    Position
		text string
	}{
		{Position{LSN: 0x16B3748, Index: 3}, "0/16B3748:3"},
		{Position{LSN: 0x1_0000_0000, Index: 0}, "1/0:0"},
		{Position{}, "0/0:0"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			if got := tc.p.String(); got != tc.text {
				t.Fatalf("String() = %q, want %q", got, tc.text)
			}
			back, err := Parse(tc.text)
			if err != nil || back != tc.p {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.text, back, err, tc.p)
			}
			k, err := ParseKey(tc.p.Key())
			if err != nil || k != tc.p {
				t.Fatalf("ParseKey(Key()) = %v, %v; want %v", k, err, tc.p)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "16B3748", "0/XYZ:1", "0/1:-1", "0/1:x", "1/2/3"} {
		if _, err := Parse(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalid", in, err)
		}
	}
}

// Key must sort bytewise exactly as Compare does: stores compare keys as strings.
func TestKeyOrderMatchesCompare(t *testing.T) {
	ps := []Position{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {0xFF, 9}, {0x100, 0}, {1 << 40, 1}, {1<<40 + 1, 0}}
	for i, a := range ps {
		for j, b := range ps {
			byKey := 0
			switch ka, kb := a.Key(), b.Key(); {
			case ka < kb:
				byKey = -1
			case ka > kb:
				byKey = 1
			}
			if byKey != a.Compare(b) {
				t.Fatalf("%v vs %v: key order %d, Compare %d", a, b, byKey, a.Compare(b))
			}
			if (i < j) != a.After(b) && (i < j) != (a.Compare(b) < 0) {
				t.Fatalf("%v vs %v out of order", a, b)
			}
		}
	}
}

// String writes what PostgreSQL's LSN notation and fmt's %X/%X:%d write,
// for the edges of each half.
func TestStringMatchesLSNNotation(t *testing.T) {
	for _, p := range []Position{{}, {LSN: 0x16B3748, Index: 3}, {LSN: 0xFFFFFFFFFFFFFFFF, Index: 0xFFFFFFFF},
		{LSN: 0x100000000, Index: 1}, {LSN: 0xABCDEF0123456789, Index: 42}} {
		want := fmt.Sprintf("%X/%X:%d", uint32(p.LSN>>32), uint32(p.LSN), p.Index)
		if got := p.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", p, got, want)
		}
	}
}
