package schemas

import (
	"errors"
	"testing"
	"time"
)

func TestLevelRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	in := &StockLevel{
		ProductID: "SKU-000042", OnHand: 310, Reserved: 12, SafetyStock: 8, Available: 290, Status: StatusInStock,
		Warehouses: []WarehouseStock{{WarehouseID: "WH-01", OnHand: 20, Reserved: 2, Available: 18,
			LowStockThreshold: 20, Status: StatusLowStock, Version: 7, LastChangeKind: "reserve", LastChangeRef: "r-1", UpdatedAt: at}},
		Position: Position{LSN: 0x16B3748, Index: 3}, TxID: 991, CommitTime: at,
	}
	var c Codec
	c.SetSchemaID(TopicLevels, 42)
	b, err := c.EncodeLevel(in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || b[1] != 0 || b[2] != 0 || b[3] != 0 || b[4] != 42 {
		t.Fatalf("header % x, want magic 0 and schema id 42", b[:5])
	}
	out, err := DecodeLevel(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.ProductID != in.ProductID || out.Available != 290 || out.Warehouses[0].Status != StatusLowStock ||
		!out.CommitTime.Equal(at) || out.Position != in.Position || !out.Warehouses[0].UpdatedAt.Equal(at) {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
}

func TestChangeRoundTripWithNullBefore(t *testing.T) {
	var c Codec
	in := &StockChange{Op: OpCreate, ProductID: "P", WarehouseID: "W", After: &InventoryRow{ProductID: "P", WarehouseID: "W", OnHand: 5}, ChangeKind: "receive"}
	b, err := c.EncodeChange(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeChange(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Before != nil || out.After == nil || out.After.OnHand != 5 || out.Op != OpCreate {
		t.Fatalf("round trip = %+v", out)
	}
}

func TestDecodeRejectsUnframed(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 0, 0, 0, 0, 2}, {0, 0}} {
		if _, err := DecodeLevel(b); !errors.Is(err, ErrNotFramed) {
			t.Errorf("DecodeLevel(% x) error = %v, want ErrNotFramed", b, err)
		}
	}
	if _, err := DecodeLevel([]byte{0, 0, 0, 0, 0, 0xff}); err == nil {
		t.Error("DecodeLevel of a truncated body succeeded")
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		avail, threshold int64
		want             string
	}{
		{-3, 10, StatusOutOfStock}, {0, 10, StatusOutOfStock}, {1, 10, StatusLowStock},
		{10, 10, StatusLowStock}, {11, 10, StatusInStock}, {1, 0, StatusInStock},
	} {
		if got := Status(tc.avail, tc.threshold); got != tc.want {
			t.Errorf("Status(%d, %d) = %s, want %s", tc.avail, tc.threshold, got, tc.want)
		}
	}
}
