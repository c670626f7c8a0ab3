package api

import (
	"hash/fnv"
	"strconv"
	"testing"
)

// ETags handed out before the hash was computed inline must still match:
// a client holding one gets 304 across an upgrade. The reference is the
// former computation, 64-bit FNV-1a through hash/fnv.
func TestETagIsFNV1aOfItsParts(t *testing.T) {
	tests := []struct {
		name  string
		v     view
		parts []string
		docs  []string
	}{
		{name: "one product", v: view{}, parts: []string{"one", "SKU-1"}, docs: []string{"0/16B3748:1"}},
		{name: "public bulk", v: view{cap: 50}, parts: []string{"bulk", "SKU-1", "SKU-2"}, docs: []string{"0/1:1", "0/1:2"}},
		{name: "warehouse filter", v: view{warehouses: map[string]struct{}{"WH-02": {}, "WH-01": {}}}, parts: []string{"bulk"}},
		{name: "empty parts", v: view{}, parts: []string{"", ""}, docs: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := fnv.New64a()
			write := func(s string) { ref.Write([]byte(s)); ref.Write([]byte{0}) }
			write(tt.v.tag())
			if tt.v.warehouses != nil {
				write("w:WH-01,WH-02")
			}
			for _, p := range tt.parts {
				write(p)
			}
			e := newETag(tt.v, tt.parts...)
			for _, d := range tt.docs {
				write(d)
				e.addBytes([]byte(d))
			}
			if want := `"` + strconv.FormatUint(ref.Sum64(), 36) + `"`; e.String() != want {
				t.Errorf("etag %s, want %s", e, want)
			}
		})
	}
}

func TestDocPosition(t *testing.T) {
	long := make([]byte, 0, 4096)
	long = append(long, `{"product_id":"P","warehouses":[`...)
	for range 40 {
		long = append(long, `{"warehouse_id":"WH-0001","on_hand":1,"reserved":0,"available":1,"status":"IN_STOCK","low_stock_threshold":0},`...)
	}
	long = append(long, `{}],"position":"1A/FF:7","commit_time":"2026-11-25T10:00:00.123456789Z"}`...)
	tests := []struct{ doc, want string }{
		{string(long), "1A/FF:7"},
		{`{"position":"0/1:1","commit_time":"2026-11-25T10:00:00Z"}`, "0/1:1"},
		// A commit time longer than the tail looked at first.
		{`{"position":"0/2:1","commit_time":"` + string(make([]byte, 200)) + `"}`, "0/2:1"},
		{`{"product_id":"P"}`, ""},
		{`{"position":"0/3:1`, ""},
	}
	for _, tt := range tests {
		if got := string(docPosition([]byte(tt.doc))); got != tt.want {
			t.Errorf("docPosition of %.40q... = %q, want %q", tt.doc, got, tt.want)
		}
	}
}
