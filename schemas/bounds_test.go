package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func validLevel() *StockLevel {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	return &StockLevel{
		ProductID: "SKU-1", OnHand: 30, Reserved: 2, SafetyStock: 1, Available: 27, Status: StatusInStock,
		Warehouses: []WarehouseStock{
			{WarehouseID: "WH-01", OnHand: 10, Reserved: 2, Available: 8, LowStockThreshold: 10, Status: StatusLowStock, Version: 1, UpdatedAt: at},
			{WarehouseID: "WH-02", OnHand: 20, SafetyStock: 1, Available: 19, LowStockThreshold: 5, Status: StatusInStock, Version: 1, UpdatedAt: at},
		},
		Position: Position{LSN: 100, Index: 1}, CommitTime: at,
	}
}

// avroLong is Avro's zig-zag varint of v.
func avroLong(v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	var out []byte
	for u >= 0x80 {
		out = append(out, byte(u)|0x80)
		u >>= 7
	}
	return append(out, byte(u))
}

// hostile returns the values a stranger could put on the levels topic, each
// with the reason it must be refused.
func hostile(t *testing.T) map[string][]byte {
	t.Helper()
	var c Codec
	frame := func(body ...[]byte) []byte { return append([]byte{0, 0, 0, 0, 0}, bytes.Join(body, nil)...) }
	good, err := c.EncodeLevel(validLevel())
	if err != nil {
		t.Fatal(err)
	}
	change, err := c.EncodeChange(&StockChange{Op: OpUpdate, ProductID: "SKU-1", WarehouseID: "WH-01",
		After: &InventoryRow{ProductID: "SKU-1", WarehouseID: "WH-01", OnHand: 5}, ChangeKind: "receive", Position: Position{LSN: 9, Index: 1}})
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(r.UintN(256))
	}
	lying := validLevel()
	lying.OnHand = 1_000_000
	lies, err := c.EncodeLevel(lying)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		// product id "SKU-1", five zero longs, status 0, then 10^9 warehouses
		"huge array":      frame(avroLong(5), []byte("SKU-1"), avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(1_000_000_000)),
		"huge string":     frame(avroLong(1 << 40)),
		"truncated":       good[:len(good)/2],
		"random bytes":    noise,
		"wrong magic":     append([]byte{1}, good[1:]...),
		"another record":  change,
		"lying totals":    lies,
		"10 MB":           frame(bytes.Repeat([]byte{2}, 10<<20)),
		"empty":           {},
		"header only":     frame(),
		"negative length": frame(avroLong(-7)),
	}
}

func TestDecodeLevelRecordRefusesHostileValues(t *testing.T) {
	for name, v := range hostile(t) {
		t.Run(name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := DecodeLevelRecord([]byte("SKU-1"), v)
			if err == nil {
				t.Fatal("decoded without error")
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			// A bounded decode allocates at most MaxWarehouses entries
			// (about 2 MiB); an unbounded one tries gigabytes.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("allocated %d MiB to refuse it", grew>>20)
			}
		})
	}
}

func TestDecodeLevelRecordAcceptsTheProducersValues(t *testing.T) {
	var c Codec
	b, err := c.EncodeLevel(validLevel())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeLevelRecord([]byte("SKU-1"), b); err != nil {
		t.Fatalf("a valid level refused: %v", err)
	}
	// The most warehouses the contract allows still decode.
	l := validLevel()
	l.Warehouses = make([]WarehouseStock, MaxWarehouses)
	l.OnHand, l.Reserved, l.SafetyStock, l.Available = 0, 0, 0, 0
	for i := range l.Warehouses {
		l.Warehouses[i] = WarehouseStock{WarehouseID: fmt.Sprintf("W%05d", i), Status: StatusOutOfStock}
	}
	l.Status = StatusOutOfStock
	if b, err = c.EncodeLevel(l); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeLevelRecord([]byte("SKU-1"), b); err != nil {
		t.Fatalf("a level of %d warehouses (%d bytes) refused: %v", MaxWarehouses, len(b), err)
	}
}

func TestCheckLevelNamesWhatIsWrong(t *testing.T) {
	cases := map[string]func(l *StockLevel) string{
		"other key":      func(l *StockLevel) string { return "SKU-2" },
		"empty key":      func(l *StockLevel) string { l.ProductID = ""; return "" },
		"control in key": func(l *StockLevel) string { l.ProductID = "SKU\x00"; return "SKU\x00" },
		"unsorted": func(l *StockLevel) string {
			l.Warehouses[0], l.Warehouses[1] = l.Warehouses[1], l.Warehouses[0]
			return "SKU-1"
		},
		"negative":      func(l *StockLevel) string { l.Warehouses[0].OnHand = -1; return "SKU-1" },
		"no position":   func(l *StockLevel) string { l.Position = Position{}; return "SKU-1" },
		"wrong status":  func(l *StockLevel) string { l.Status = StatusOutOfStock; return "SKU-1" },
		"no warehouses": func(l *StockLevel) string { l.Warehouses = nil; return "SKU-1" },
	}
	for name, mutate := range cases {
		l := validLevel()
		key := mutate(l)
		if err := CheckLevel(key, l); !errors.Is(err, ErrOutOfBounds) {
			t.Errorf("%s: CheckLevel = %v, want ErrOutOfBounds", name, err)
		}
	}
	if err := CheckLevel("SKU-1", validLevel()); err != nil {
		t.Fatalf("valid level: %v", err)
	}
}
