package stockstore

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendDoc appends the served JSON document of s: the encoding of
// s.Product(), field for field as encoding/json would write it, without
// reflection. Applying snapshots is the projector's hot path and
// encoding/json was a third of its CPU (BenchmarkApply).
func appendDoc(b []byte, s *Snapshot) []byte {
	b = append(b, `{"product_id":`...)
	b = appendString(b, s.ProductID)
	b = append(b, `,"on_hand":`...)
	b = strconv.AppendInt(b, s.OnHand, 10)
	b = append(b, `,"reserved":`...)
	b = strconv.AppendInt(b, s.Reserved, 10)
	b = append(b, `,"available":`...)
	b = strconv.AppendInt(b, s.Available, 10)
	b = append(b, `,"status":`...)
	b = appendString(b, s.Status)
	b = append(b, `,"warehouses":[`...)
	for i := range s.Warehouses {
		w := &s.Warehouses[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"warehouse_id":`...)
		b = appendString(b, w.WarehouseID)
		b = append(b, `,"on_hand":`...)
		b = strconv.AppendInt(b, w.OnHand, 10)
		b = append(b, `,"reserved":`...)
		b = strconv.AppendInt(b, w.Reserved, 10)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, w.Available, 10)
		b = append(b, `,"status":`...)
		b = appendString(b, w.Status)
		b = append(b, `,"low_stock_threshold":`...)
		b = strconv.AppendInt(b, w.LowStockThreshold, 10)
		b = append(b, '}')
	}
	b = append(b, `],"position":"`...)
	b = append(b, s.Position.String()...) // hex, '/', ':' and digits only
	b = append(b, `","commit_time":"`...)
	b = s.CommitTime.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendString appends s as a JSON string. Plain printable ASCII, which ids
// and statuses are, is copied as is; anything else goes through
// encoding/json for its escaping rules.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
