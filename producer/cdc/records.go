package cdc

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

// recordBuilder turns state into Kafka records with CloudEvents headers.
// It is used by one goroutine at a time (the snapshot's, then the stream's).
type recordBuilder struct {
	cfg   *Config
	codec *schemas.Codec
	// The header values that are the same on every record, the event types
	// seen so far, and the last commit time with its text (a source
	// transaction's records share it): made once rather than per record,
	// they were a twentieth of a backlog drain's allocations. The client
	// never writes into a header's value.
	source, specVersion, contentType []byte
	types                            map[string][]byte
	at                               time.Time
	atText                           []byte
}

func newRecordBuilder(cfg *Config) recordBuilder {
	return recordBuilder{cfg: cfg, codec: &schemas.Codec{}, source: []byte(cfg.Source),
		specVersion: []byte(schemas.SpecVersion), contentType: []byte(schemas.ContentType),
		types: make(map[string][]byte)}
}

// maxCachedTypes bounds the cache of event types: a change's kind comes
// from the source row, so a stranger's writes could name any number of them.
const maxCachedTypes = 64

func (b *recordBuilder) headers(id, typ string, at time.Time) []kgo.RecordHeader {
	if b.atText == nil || !at.Equal(b.at) {
		b.at, b.atText = at, []byte(at.UTC().Format(time.RFC3339Nano))
	}
	typText, ok := b.types[typ]
	if !ok {
		typText = []byte(typ)
		if len(b.types) < maxCachedTypes {
			b.types[typ] = typText
		}
	}
	return []kgo.RecordHeader{
		{Key: schemas.HeaderID, Value: []byte(id)},
		{Key: schemas.HeaderType, Value: typText},
		{Key: schemas.HeaderSource, Value: b.source},
		{Key: schemas.HeaderTime, Value: b.atText},
		{Key: schemas.HeaderSpecVersion, Value: b.specVersion},
		{Key: schemas.HeaderContentType, Value: b.contentType},
	}
}

// level builds the stock.levels.v1 record; a nil level is a tombstone.
func (b *recordBuilder) level(productID string, l *schemas.StockLevel, pos position.Position, kind string, at time.Time) (*kgo.Record, error) {
	r := &kgo.Record{Topic: b.cfg.LevelsTopic, Key: []byte(productID),
		Headers: b.headers(schemas.EventID(pos, productID), schemas.EventType(kind), at)}
	if l != nil {
		v, err := b.codec.EncodeLevel(l)
		if err != nil {
			return nil, err
		}
		r.Value = v
	}
	return r, nil
}

func rowValue(r *change.Row) *schemas.InventoryRow {
	if r == nil {
		return nil
	}
	return &schemas.InventoryRow{
		ProductID: r.ProductID, WarehouseID: r.WarehouseID,
		OnHand: r.OnHand, Reserved: r.Reserved, SafetyStock: r.SafetyStock, Incoming: r.Incoming,
		LowStockThreshold: r.LowStockThreshold, Version: r.Version,
		LastChangeKind: r.LastChangeKind, LastChangeRef: r.LastChangeRef, UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// change builds the stock.changes.v1 record of one row change.
func (b *recordBuilder) change(op change.Op, k change.Key, before, after *change.Row, pos position.Position, txID int64, at time.Time) (*kgo.Record, error) {
	v := &schemas.StockChange{
		Op: string(op), ProductID: k.ProductID, WarehouseID: k.WarehouseID,
		Before: rowValue(before), After: rowValue(after),
		Position: schemas.PositionOf(pos), TxID: txID, CommitTime: at.UTC(),
	}
	switch {
	case after != nil:
		v.ChangeKind, v.ChangeRef = after.LastChangeKind, after.LastChangeRef
	case before != nil:
		// A delete has no after image; what removed the row is not stamped
		// on it, so the kind says so.
		v.ChangeKind = "delete"
	}
	body, err := b.codec.EncodeChange(v)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: b.cfg.ChangesTopic, Key: []byte(k.ProductID), Value: body,
		Headers: b.headers(schemas.EventID(pos, k.ProductID, k.WarehouseID), schemas.EventType(v.ChangeKind), at)}, nil
}

// alert builds the stock.alerts.v1 record of one crossing.
func (b *recordBuilder) alert(a *schemas.StockAlert) (*kgo.Record, error) {
	body, err := b.codec.EncodeAlert(a)
	if err != nil {
		return nil, err
	}
	scope := "total"
	if a.WarehouseID != nil {
		scope = *a.WarehouseID
	}
	return &kgo.Record{Topic: b.cfg.AlertsTopic, Key: []byte(a.ProductID), Value: body,
		Headers: b.headers(a.Position.Value().String()+"/"+a.ProductID+"/"+scope+"/"+a.Kind, schemas.TypeLowStock, a.CommitTime)}, nil
}
