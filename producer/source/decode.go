package source

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stockpipe/stock/producer/change"
)

// rowDecoder turns pgoutput tuples of inventory_levels into change.Row using
// the column layout of the latest Relation message, so added or reordered
// columns do not break decoding.
type rowDecoder struct {
	types   *pgtype.Map
	columns []*pglogrepl.RelationMessageColumn
	index   map[string]int
}

var requiredColumns = []string{
	"product_id", "warehouse_id", "on_hand", "reserved", "safety_stock", "incoming",
	"low_stock_threshold", "version", "last_change_kind", "last_change_ref", "updated_at",
}

func newRowDecoder(rel *pglogrepl.RelationMessage) (*rowDecoder, error) {
	d := &rowDecoder{types: pgtype.NewMap(), columns: rel.Columns, index: make(map[string]int, len(rel.Columns))}
	for i, c := range rel.Columns {
		d.index[c.Name] = i
	}
	for _, name := range requiredColumns {
		if _, ok := d.index[name]; !ok {
			return nil, fmt.Errorf("relation %s.%s lacks column %s", rel.Namespace, rel.RelationName, name)
		}
	}
	return d, nil
}

func (d *rowDecoder) scan(tuple *pglogrepl.TupleData, name string, dst any) error {
	i := d.index[name]
	if i >= len(tuple.Columns) {
		return fmt.Errorf("column %s missing from tuple", name)
	}
	col := tuple.Columns[i]
	switch col.DataType {
	case 'n':
		return nil // NULL leaves the zero value
	case 'u':
		return fmt.Errorf("column %s is an unchanged toasted value", name)
	case 't':
		if ok, err := scanFast(d.columns[i].DataType, col.Data, dst); ok {
			if err != nil {
				return fmt.Errorf("decoding column %s: %w", name, err)
			}
			return nil
		}
		if err := d.types.Scan(d.columns[i].DataType, pgtype.TextFormatCode, col.Data, dst); err != nil {
			return fmt.Errorf("decoding column %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("column %s has unsupported tuple data type %q", name, col.DataType)
}

// key decodes the primary key columns only, as sent for deletes and for the
// old key of an update that changed it.
func (d *rowDecoder) key(tuple *pglogrepl.TupleData) (change.Key, error) {
	var k change.Key
	if err := d.scan(tuple, "product_id", &k.ProductID); err != nil {
		return k, err
	}
	if err := d.scan(tuple, "warehouse_id", &k.WarehouseID); err != nil {
		return k, err
	}
	return k, nil
}

func (d *rowDecoder) row(tuple *pglogrepl.TupleData) (*change.Row, error) {
	var r change.Row
	var kind, ref *string
	var updated *time.Time
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"product_id", &r.ProductID}, {"warehouse_id", &r.WarehouseID},
		{"on_hand", &r.OnHand}, {"reserved", &r.Reserved}, {"safety_stock", &r.SafetyStock},
		{"incoming", &r.Incoming}, {"low_stock_threshold", &r.LowStockThreshold},
		{"version", &r.Version}, {"last_change_kind", &kind}, {"last_change_ref", &ref},
		{"updated_at", &updated},
	} {
		if err := d.scan(tuple, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	if kind != nil {
		r.LastChangeKind = *kind
	}
	if ref != nil {
		r.LastChangeRef = *ref
	}
	if updated != nil {
		r.UpdatedAt = updated.UTC()
	}
	return &r, nil
}

// pgoutput text of the captured columns' types, parsed without pgtype's
// generic plan lookup: decoding was the producer's largest CPU cost.
const (
	oidInt8        = 20
	oidInt4        = 23
	oidText        = 25
	oidVarchar     = 1043
	oidTimestamptz = 1184
	// The walsender's TimeZone is pinned to UTC (see ConnectReplication).
	timestamptzLayout = "2006-01-02 15:04:05.999999Z07"
)

// scanFast handles the common type and destination pairs; ok is false when
// the pair is not one of them and the caller should fall back to pgtype.
func scanFast(oid uint32, data []byte, dst any) (ok bool, err error) {
	switch oid {
	case oidInt4:
		if d, isType := dst.(*int32); isType {
			v, err := strconv.ParseInt(string(data), 10, 32)
			*d = int32(v)
			return true, err
		}
	case oidInt8:
		if d, isType := dst.(*int64); isType {
			v, err := strconv.ParseInt(string(data), 10, 64)
			*d = v
			return true, err
		}
	case oidText, oidVarchar:
		switch d := dst.(type) {
		case *string:
			*d = string(data)
			return true, nil
		case **string:
			v := string(data)
			*d = &v
			return true, nil
		}
	case oidTimestamptz:
		if d, isType := dst.(**time.Time); isType {
			v, err := time.Parse(timestamptzLayout, string(data))
			if err != nil {
				return false, nil // infinity and other oddities: let pgtype decide
			}
			v = v.UTC()
			*d = &v
			return true, nil
		}
	}
	return false, nil
}
