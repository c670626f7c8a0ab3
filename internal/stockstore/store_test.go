package stockstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

func newStore(t *testing.T) (*stockstore.Store, redis.UniversalClient) {
	return storetest.New(t)
}

func pos(lsn uint64, idx uint32) position.Position { return position.Position{LSN: lsn, Index: idx} }

var commitTime = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

// snap is a one-warehouse snapshot whose on_hand tells which write it was.
func snap(id string, p position.Position, onHand int64) stockstore.Snapshot {
	return stockstore.Snapshot{
		ProductID: id, Position: p,
		OnHand: onHand, Reserved: 2, Available: onHand - 2, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{{
			WarehouseID: "WH-01", OnHand: onHand, Reserved: 2, Available: onHand - 2,
			Status: "IN_STOCK", LowStockThreshold: 5,
		}},
		CommitTime: commitTime,
	}
}

func tomb(id string, p position.Position) stockstore.Snapshot {
	return stockstore.Snapshot{ProductID: id, Position: p, Deleted: true}
}

func TestApplyOrdersByPosition(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()

	type step struct {
		snap    stockstore.Snapshot
		applied bool
	}
	tests := []struct {
		name  string
		steps []step
		// wantOnHand is the served on_hand at the end; -1 means not found.
		wantOnHand int64
		wantPos    position.Position
	}{
		{
			name:       "first snapshot applies",
			steps:      []step{{snap("P", pos(100, 1), 10), true}},
			wantOnHand: 10, wantPos: pos(100, 1),
		},
		{
			name: "newer position wins",
			steps: []step{
				{snap("P", pos(100, 1), 10), true},
				{snap("P", pos(100, 2), 11), true},
				{snap("P", pos(200, 0), 12), true},
			},
			wantOnHand: 12, wantPos: pos(200, 0),
		},
		{
			name: "older position is skipped",
			steps: []step{
				{snap("P", pos(200, 1), 20), true},
				{snap("P", pos(100, 9), 10), false},
				{snap("P", pos(200, 0), 19), false},
			},
			wantOnHand: 20, wantPos: pos(200, 1),
		},
		{
			name: "equal position is skipped",
			steps: []step{
				{snap("P", pos(200, 1), 20), true},
				{snap("P", pos(200, 1), 99), false},
			},
			wantOnHand: 20, wantPos: pos(200, 1),
		},
		{
			name: "positions compare numerically across the 32-bit halves",
			steps: []step{
				{snap("P", pos(0x1_0000_0000, 0), 30), true},
				{snap("P", pos(0xFFFF_FFFF, 0xFFFF_FFFF), 10), false},
			},
			wantOnHand: 30, wantPos: pos(0x1_0000_0000, 0),
		},
		{
			name: "tombstone deletes",
			steps: []step{
				{snap("P", pos(100, 1), 10), true},
				{tomb("P", pos(100, 2)), true},
			},
			wantOnHand: -1, wantPos: pos(100, 2),
		},
		{
			name: "older snapshot replayed after a tombstone does not resurrect",
			steps: []step{
				{snap("P", pos(100, 1), 10), true},
				{tomb("P", pos(300, 1)), true},
				{snap("P", pos(100, 1), 10), false},
				{snap("P", pos(300, 1), 10), false},
			},
			wantOnHand: -1, wantPos: pos(300, 1),
		},
		{
			name: "newer snapshot after a tombstone recreates",
			steps: []step{
				{snap("P", pos(100, 1), 10), true},
				{tomb("P", pos(200, 1)), true},
				{snap("P", pos(300, 1), 30), true},
				{tomb("P", pos(250, 1)), false},
			},
			wantOnHand: 30, wantPos: pos(300, 1),
		},
		{
			name: "tombstone of a product never seen blocks older snapshots",
			steps: []step{
				{tomb("P", pos(500, 1)), true},
				{snap("P", pos(400, 1), 40), false},
			},
			wantOnHand: -1, wantPos: pos(500, 1),
		},
		{
			name: "older tombstone is skipped",
			steps: []step{
				{snap("P", pos(500, 1), 50), true},
				{tomb("P", pos(400, 1)), false},
			},
			wantOnHand: 50, wantPos: pos(500, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A unique product per case: the cases share the store.
			id := testenv.Name(t, "SKU")
			for i, s := range tt.steps {
				s.snap.ProductID = id
				applied, err := st.Apply(ctx, []stockstore.Snapshot{s.snap})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if applied[0] != s.applied {
					t.Errorf("step %d (%s deleted=%v): applied = %v, want %v",
						i, s.snap.Position, s.snap.Deleted, applied[0], s.applied)
				}
			}
			p, err := st.Get(ctx, id)
			switch {
			case tt.wantOnHand < 0:
				if !errors.Is(err, stockstore.ErrNotFound) {
					t.Errorf("Get = %+v, %v; want ErrNotFound", p, err)
				}
			case err != nil:
				t.Fatalf("Get: %v", err)
			default:
				if p.OnHand != tt.wantOnHand || p.Position != tt.wantPos.String() {
					t.Errorf("Get = on_hand %d at %s, want %d at %s", p.OnHand, p.Position, tt.wantOnHand, tt.wantPos)
				}
			}
			got, deleted, ok, err := st.StoredPosition(ctx, id)
			if err != nil || !ok || got != tt.wantPos || deleted != (tt.wantOnHand < 0) {
				t.Errorf("StoredPosition = %s deleted=%v ok=%v err=%v, want %s deleted=%v",
					got, deleted, ok, err, tt.wantPos, tt.wantOnHand < 0)
			}
		})
	}
}

func TestApplyBatchIsOneAtomicUnitPerProduct(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()

	// Two snapshots of A in one batch, out of order: the newer one stays.
	batch := []stockstore.Snapshot{
		snap("A", pos(10, 2), 2),
		snap("B", pos(10, 1), 1),
		snap("A", pos(10, 1), 1),
		tomb("C", pos(10, 3)),
	}
	applied, err := st.Apply(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(applied, want) {
		t.Errorf("applied = %v, want %v", applied, want)
	}
	// Replaying the same batch applies nothing: idempotent.
	applied, err = st.Apply(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, false, false}; !slices.Equal(applied, want) {
		t.Errorf("replay applied = %v, want %v", applied, want)
	}
	a, err := st.Get(ctx, "A")
	if err != nil || a.OnHand != 2 {
		t.Errorf("Get(A) = %+v, %v; want on_hand 2", a, err)
	}
}

func TestServedDocumentShape(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()

	s := stockstore.Snapshot{
		ProductID: "SKU-000042", Position: pos(0x16B3748, 3),
		OnHand: 310, Reserved: 12, Available: 290, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{{
			WarehouseID: "WH-01", OnHand: 20, Reserved: 2, Available: 18,
			Status: "LOW_STOCK", LowStockThreshold: 20,
		}},
		// Not UTC on purpose: the store serves UTC.
		CommitTime: commitTime.In(time.FixedZone("CET", 3600)),
	}
	if _, err := st.Apply(ctx, []stockstore.Snapshot{s}); err != nil {
		t.Fatal(err)
	}
	doc, err := st.GetJSON(ctx, "SKU-000042")
	if err != nil {
		t.Fatal(err)
	}
	// The answer shape of DESIGN.md, verbatim.
	const want = `{"product_id": "SKU-000042", "on_hand": 310, "reserved": 12, "available": 290,
 "status": "IN_STOCK",
 "warehouses": [{"warehouse_id": "WH-01", "on_hand": 20, "reserved": 2, "available": 18,
                 "status": "LOW_STOCK", "low_stock_threshold": 20}],
 "position": "0/16B3748:3", "commit_time": "2026-11-25T10:00:00.123456Z"}`
	var got, exp any
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("served document is not JSON: %v\n%s", err, doc)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if string(gb) != string(eb) {
		t.Errorf("served document\n got %s\nwant %s", gb, eb)
	}
}

func TestGetManyKeepsOrderAndListsNotFound(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, []stockstore.Snapshot{
		snap("A", pos(1, 1), 1), snap("B", pos(1, 2), 2), snap("C", pos(1, 3), 3),
		tomb("C", pos(1, 4)),
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		ids          []string
		wantFound    []string
		wantNotFound []string
	}{
		{"empty", nil, nil, nil},
		{"request order kept", []string{"B", "A"}, []string{"B", "A"}, nil},
		{"unknown and deleted are not found", []string{"X", "A", "C", "B"}, []string{"A", "B"}, []string{"X", "C"}},
		{"none found", []string{"X", "Y"}, nil, []string{"X", "Y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, notFound, err := st.GetMany(ctx, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, p := range ps {
				found = append(found, p.ProductID)
			}
			if !slices.Equal(found, tt.wantFound) || !slices.Equal(notFound, tt.wantNotFound) {
				t.Errorf("GetMany(%v) = %v, not found %v; want %v, %v", tt.ids, found, notFound, tt.wantFound, tt.wantNotFound)
			}
		})
	}
}

func TestWatermarksOnlyMoveForward(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	const topic = "stock.levels.v1"
	mark := func(part int32, off int64) stockstore.Watermark {
		return stockstore.Watermark{Topic: topic, Partition: part, Offset: off, Position: pos(uint64(off), 1), CommitTime: commitTime}
	}
	steps := []stockstore.Watermark{mark(0, 10), mark(1, 5), mark(0, 7), mark(1, 6)}
	for _, m := range steps {
		if _, err := st.Apply(ctx, []stockstore.Snapshot{snap("A", pos(uint64(m.Offset), 1), 1)}, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Watermarks(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]int64{}
	for _, w := range got {
		offsets[w.Partition] = w.Offset
		if w.Position != pos(uint64(w.Offset), 1) || !w.CommitTime.Equal(commitTime) || w.AppliedAt.IsZero() {
			t.Errorf("watermark %+v: position, commit time or applied time not kept", w)
		}
	}
	if want := map[int32]int64{0: 10, 1: 6}; !maps.Equal(offsets, want) {
		t.Errorf("watermark offsets = %v, want %v", offsets, want)
	}
}

// Redis loses its script cache on restart; Apply must load the scripts again
// by itself instead of failing every batch with NOSCRIPT.
func TestApplySurvivesScriptCacheFlush(t *testing.T) {
	st, rdb := newStore(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	applied, err := st.Apply(ctx, []stockstore.Snapshot{snap("A", pos(1, 1), 1), snap("B", pos(1, 1), 1)},
		stockstore.Watermark{Topic: "t", Partition: 0, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []bool{true, true}) {
		t.Errorf("applied = %v, want both", applied)
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, prefix := range []string{"", "stock:{x}:"} {
		if _, err := stockstore.New(nil, prefix); !errors.Is(err, stockstore.ErrBadPrefix) {
			t.Errorf("New(%q) error = %v, want ErrBadPrefix", prefix, err)
		}
	}
}

func TestUnreachableRedisFailsFast(t *testing.T) {
	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs = []string{"127.0.0.1:1"} // nothing listens on port 1
	rdb := stockstore.NewClient(cfg)
	defer rdb.Close()
	st, err := stockstore.New(rdb, "x:")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = st.GetJSON(context.Background(), "A")
	if err == nil || errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("GetJSON against a closed port = %v, want a connection error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing took %s, want well under the 2s the API can afford", d)
	}
}
