package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

const apiKey = "key-0123456789abcdef"

// twoWarehouses is a product stocked in WH-01 (plenty) and WH-02 (low).
func twoWarehouses(id string, p position.Position) stockstore.Snapshot {
	return stockstore.Snapshot{
		ProductID: id, Position: p, CommitTime: commitTime,
		OnHand: 104, Reserved: 2, Available: 102, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{
			{WarehouseID: "WH-01", OnHand: 100, Reserved: 0, Available: 100, Status: "IN_STOCK", LowStockThreshold: 10},
			{WarehouseID: "WH-02", OnHand: 4, Reserved: 2, Available: 2, Status: "LOW_STOCK", LowStockThreshold: 5},
		},
	}
}

func apply(t *testing.T, st *stockstore.Store, snaps ...stockstore.Snapshot) {
	t.Helper()
	if _, err := st.Apply(context.Background(), snaps); err != nil {
		t.Fatal(err)
	}
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return v
}

func TestBulkWarehouseFilter(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	apply(t, st, twoWarehouses("P-2W", position.Position{LSN: 9, Index: 1}))
	tests := []struct {
		name                        string
		warehouses                  string
		wantRows                    []string
		onHand, reserved, available int64
		status                      string
	}{
		{"no filter: stored totals", ``, []string{"WH-01", "WH-02"}, 104, 2, 102, "IN_STOCK"},
		{"the low one only: status recomputed", `,"warehouse_ids":["WH-02"]`, []string{"WH-02"}, 4, 2, 2, "LOW_STOCK"},
		{"both, duplicates folded", `,"warehouse_ids":["WH-02","WH-01","WH-02"]`, []string{"WH-01", "WH-02"}, 104, 2, 102, "IN_STOCK"},
		{"a warehouse without a row: nothing there", `,"warehouse_ids":["WH-99"]`, []string{}, 0, 0, 0, "OUT_OF_STOCK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, h, "POST", "/v1/stock/bulk", `{"product_ids":["P-2W","NOPE"]`+tt.warehouses+`}`)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			got := decode[bulkBody](t, body)
			if len(got.Products) != 1 || !slices.Equal(got.NotFound, []string{"NOPE"}) {
				t.Fatalf("body %s", body)
			}
			p := got.Products[0]
			rows := []string{}
			for _, w := range p.Warehouses {
				rows = append(rows, w.WarehouseID)
			}
			if !slices.Equal(rows, tt.wantRows) || p.OnHand != tt.onHand || p.Reserved != tt.reserved ||
				p.Available != tt.available || p.Status != tt.status {
				t.Errorf("got rows %v totals %d/%d/%d %s; want %v %d/%d/%d %s", rows, p.OnHand, p.Reserved, p.Available, p.Status,
					tt.wantRows, tt.onHand, tt.reserved, tt.available, tt.status)
			}
			if p.Position != "0/9:1" || !p.CommitTime.Equal(commitTime) {
				t.Errorf("freshness lost: %s %s", p.Position, p.CommitTime)
			}
		})
	}
}

type warehouseRow struct {
	ProductID         string    `json:"product_id"`
	OnHand            int64     `json:"on_hand"`
	Reserved          int64     `json:"reserved"`
	Available         int64     `json:"available"`
	Status            string    `json:"status"`
	LowStockThreshold int64     `json:"low_stock_threshold"`
	Position          string    `json:"position"`
	CommitTime        time.Time `json:"commit_time"`
}

func TestWarehouseStock(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	apply(t, st, twoWarehouses("P-2W", position.Position{LSN: 9, Index: 1}))
	res, body := do(t, h, "GET", "/v1/warehouses/WH-02/stock?product_ids=NOPE,P-2W,SKU-1&product_ids=P-2W", "")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	got := decode[struct {
		WarehouseID string         `json:"warehouse_id"`
		Products    []warehouseRow `json:"products"`
		NotFound    []string       `json:"not_found"`
	}](t, body)
	want := warehouseRow{ProductID: "P-2W", OnHand: 4, Reserved: 2, Available: 2, Status: "LOW_STOCK", LowStockThreshold: 5, Position: "0/9:1", CommitTime: commitTime}
	if got.WarehouseID != "WH-02" || len(got.Products) != 1 || got.Products[0] != want {
		t.Errorf("got %+v, want the WH-02 row %+v", got, want)
	}
	// SKU-1 exists but has no WH-02 row: not found there, in request order.
	if !slices.Equal(got.NotFound, []string{"NOPE", "SKU-1"}) {
		t.Errorf("not_found = %v", got.NotFound)
	}
}

func TestETagAndCaching(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{CacheMaxAge: 2 * time.Second, WatermarkRefresh: time.Nanosecond})
	if _, err := st.Apply(context.Background(), nil, stockstore.Watermark{
		Topic: "stock.levels.v1", Partition: 0, Offset: 5, Position: position.Position{LSN: 0x20, Index: 1}, CommitTime: commitTime,
	}, stockstore.Watermark{
		Topic: "stock.levels.v1", Partition: 1, Offset: 5, Position: position.Position{LSN: 0x30, Index: 1}, CommitTime: commitTime.Add(time.Second),
	}); err != nil {
		t.Fatal(err)
	}
	reads := []struct{ name, method, path, body string }{
		{"get", "GET", "/v1/stock/SKU-1", ""},
		{"bulk", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-2","SKU-1"]}`},
		{"warehouse", "GET", "/v1/warehouses/WH-01/stock?product_ids=SKU-1", ""},
		{"changes", "GET", "/v1/stock/changes", ""},
	}
	for i, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			res, body := do(t, h, r.method, r.path, r.body)
			tag := res.Header.Get("ETag")
			if res.StatusCode != 200 || !strings.HasPrefix(tag, `"`) {
				t.Fatalf("status %d, ETag %q: %s", res.StatusCode, tag, body)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=2" {
				t.Errorf("Cache-Control = %q", cc)
			}
			// The low watermark: the older partition's commit and position.
			if w, p := res.Header.Get("X-Stock-Watermark"), res.Header.Get("X-Stock-Watermark-Position"); w != "2026-11-25T10:00:00.123456Z" || p != "0/20:1" {
				t.Errorf("watermark headers %q %q", w, p)
			}
			res, body = doWith(t, h, r.method, r.path, r.body, map[string]string{"If-None-Match": `"other", ` + tag})
			if res.StatusCode != http.StatusNotModified || len(body) != 0 || res.Header.Get("ETag") != tag {
				t.Errorf("If-None-Match with the tag: %d %q %s", res.StatusCode, res.Header.Get("ETag"), body)
			}
			// A newer snapshot of SKU-1 changes the tag.
			apply(t, st, snapshot("SKU-1", 11, position.Position{LSN: 0x16B3749, Index: uint32(i + 1)}))
			res, _ = doWith(t, h, r.method, r.path, r.body, map[string]string{"If-None-Match": tag})
			if res.StatusCode != 200 || res.Header.Get("ETag") == tag {
				t.Errorf("after a change: %d with ETag %q (was %q)", res.StatusCode, res.Header.Get("ETag"), tag)
			}
		})
	}
	// Errors are never cached.
	res, _ := do(t, h, "GET", "/v1/stock/NOPE", "")
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" || res.Header.Get("ETag") != "" {
		t.Errorf("404 Cache-Control %q ETag %q", cc, res.Header.Get("ETag"))
	}
}

func TestPublicView(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{PublicCap: 50, APIKeys: []string{apiKey}})
	apply(t, st, twoWarehouses("P-2W", position.Position{LSN: 9, Index: 1}))
	tests := []struct {
		name, key, view    string
		total, wh1, wh2    int64 // on_hand
		status, cacheScope string
		wantStatus         int
	}{
		{"no key: capped", "", "public; cap=50", 50, 50, 4, "IN_STOCK", "public", 200},
		{"valid key: exact", apiKey, "exact", 104, 100, 4, "IN_STOCK", "private", 200},
	}
	var tags []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := doWith(t, h, "GET", "/v1/stock/P-2W", "", map[string]string{"X-API-Key": tt.key})
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			p := decode[stockstore.Product](t, body)
			if p.OnHand != tt.total || p.Warehouses[0].OnHand != tt.wh1 || p.Warehouses[1].OnHand != tt.wh2 {
				t.Errorf("on_hand %d (%d, %d), want %d (%d, %d)", p.OnHand, p.Warehouses[0].OnHand, p.Warehouses[1].OnHand, tt.total, tt.wh1, tt.wh2)
			}
			// Statuses stay exact whatever the cap.
			if p.Status != tt.status || p.Warehouses[1].Status != "LOW_STOCK" {
				t.Errorf("statuses %s %s", p.Status, p.Warehouses[1].Status)
			}
			if v := res.Header.Get("X-Stock-View"); v != tt.view {
				t.Errorf("X-Stock-View = %q, want %q", v, tt.view)
			}
			if cc := res.Header.Get("Cache-Control"); !strings.HasPrefix(cc, tt.cacheScope+",") || res.Header.Get("Vary") != "X-API-Key" {
				t.Errorf("Cache-Control %q, Vary %q", cc, res.Header.Get("Vary"))
			}
			tags = append(tags, res.Header.Get("ETag"))
		})
	}
	if len(tags) == 2 && tags[0] == tags[1] {
		t.Errorf("public and exact answers share the ETag %s", tags[0])
	}
	// The cap applies to bulk and warehouse answers too.
	_, body := do(t, h, "POST", "/v1/stock/bulk", `{"product_ids":["P-2W"]}`)
	if !strings.Contains(string(body), `"on_hand":50`) || strings.Contains(string(body), `"on_hand":100`) {
		t.Errorf("bulk not capped: %s", body)
	}
	_, body = do(t, h, "GET", "/v1/warehouses/WH-01/stock?product_ids=P-2W", "")
	if !strings.Contains(string(body), `"on_hand":50`) {
		t.Errorf("warehouse stock not capped: %s", body)
	}
}

func TestReadiness(t *testing.T) {
	mark := func(part int32, commit time.Time, applied time.Time) stockstore.Watermark {
		return stockstore.Watermark{Topic: "stock.levels.v1", Partition: part, Offset: 1,
			Position: position.Position{LSN: 1, Index: 1}, CommitTime: commit, AppliedAt: applied}
	}
	caughtUp := func(m stockstore.Watermark) stockstore.Watermark { m.CaughtUp = true; return m }
	now := time.Now()
	tests := []struct {
		name       string
		maxLag     time.Duration
		marks      []stockstore.Watermark
		alive      bool // a projector heartbeat is present
		status     int
		projection string
		projector  string
	}{
		{"lag not checked", 0, nil, false, 200, "not checked", ""},
		{"nothing applied yet", time.Minute, nil, true, 503, "no watermark: the projector has applied nothing yet", "ok"},
		{"applied promptly, source idle since", time.Minute,
			[]stockstore.Watermark{mark(0, now.Add(-time.Hour), now.Add(-time.Hour+time.Second)), mark(1, now, now)}, true, 200, "ok", "ok"},
		{"one partition catching up", time.Minute,
			[]stockstore.Watermark{mark(0, now.Add(-10*time.Minute), now), mark(1, now, now)}, true, 503, "lagging", "ok"},
		{"a backlog applied to its end, then quiet", time.Minute,
			[]stockstore.Watermark{caughtUp(mark(0, now.Add(-10*time.Minute), now.Add(-5*time.Minute))), mark(1, now, now)}, true, 200, "ok", "ok"},
		{"projector gone, source idle", time.Minute,
			[]stockstore.Watermark{mark(0, now.Add(-time.Hour), now.Add(-time.Hour+time.Second))}, false, 503, "ok", "no heartbeat: no projector is running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, st := newAPIWith(t, api.Deps{MaxLag: tt.maxLag})
			if tt.alive {
				if err := st.Heartbeat(context.Background(), "stock.levels.v1", time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if len(tt.marks) > 0 {
				if _, err := st.Apply(context.Background(), nil, tt.marks...); err != nil {
					t.Fatal(err)
				}
			}
			res, body := do(t, h, "GET", "/readyz", "")
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			// The gauge alerts read says what /readyz says.
			wantGauge := "stock_api_ready 0"
			if tt.status == 200 {
				wantGauge = "stock_api_ready 1"
			}
			if _, m := do(t, h, "GET", "/metrics", ""); !strings.Contains(string(m), wantGauge) {
				t.Errorf("/metrics lacks %q with /readyz %d", wantGauge, tt.status)
			}
			var checks struct {
				Checks map[string]string `json:"checks"`
				Error  struct {
					Details struct {
						Checks map[string]string `json:"checks"`
					} `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &checks); err != nil {
				t.Fatal(err)
			}
			got := checks.Checks
			if res.StatusCode != 200 {
				checkError(t, res, body, "not_ready")
				got = checks.Error.Details.Checks
			}
			if got["redis"] != "ok" || got["projection"] != tt.projection || got["projector"] != tt.projector {
				t.Errorf("checks %v, want redis ok, projection %q and projector %q", got, tt.projection, tt.projector)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	h, _ := newAPIWith(t, api.Deps{RateLimit: 1, RateBurst: 2})
	var codes []int
	for range 4 {
		res, body := do(t, h, "GET", "/v1/stock/SKU-1", "")
		codes = append(codes, res.StatusCode)
		if res.StatusCode == 429 {
			checkError(t, res, body, "rate_limited")
			if res.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if !slices.Equal(codes, []int{200, 200, 429, 429}) {
		t.Errorf("codes %v, want the burst of 2 then 429", codes)
	}
	// Probes are never limited.
	if res, _ := do(t, h, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Errorf("/healthz limited: %d", res.StatusCode)
	}
}
