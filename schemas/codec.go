package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// Values on every topic are framed in the Confluent wire format: a zero magic
// byte, a big-endian 4-byte schema id, then the Avro binary body. Without a
// schema registry the id is 0 and the schema is this package's .avsc of the
// topic; with one, it is the id the registry gave the subject <topic>-value.
const (
	magicByte  = 0
	headerSize = 5
)

// ErrNotFramed is returned for a value that lacks the wire-format header.
var ErrNotFramed = errors.New("value is not in the Confluent wire format")

// Schemas parsed from the embedded .avsc files. Parsing happens once; a
// broken schema file is a programming error caught by the package tests.
var (
	LevelsSchema  = avro.MustParse(levelsSchemaText)
	ChangesSchema = avro.MustParse(changesSchemaText)
	AlertsSchema  = avro.MustParse(alertsSchemaText)
)

// SchemaText returns the .avsc text of a topic's value schema.
func SchemaText(topic string) (string, bool) {
	switch topic {
	case TopicLevels:
		return levelsSchemaText, true
	case TopicChanges:
		return changesSchemaText, true
	case TopicAlerts:
		return alertsSchemaText, true
	}
	return "", false
}

// Codec encodes and decodes the values of the three topics. The zero value
// frames with schema id 0; SetSchemaID records ids from a registry.
type Codec struct {
	ids map[string]uint32
}

// SetSchemaID makes Encode frame values of topic with id.
func (c *Codec) SetSchemaID(topic string, id uint32) {
	if c.ids == nil {
		c.ids = make(map[string]uint32, 3)
	}
	c.ids[topic] = id
}

// writers are reused Avro writers: the body is encoded into one and copied
// once, into the framed value (avro.Marshal would copy it once more).
var writers = sync.Pool{New: func() any { return avro.NewWriter(nil, 1024) }}

func (c *Codec) frame(topic string, schema avro.Schema, v any) ([]byte, error) {
	w := writers.Get().(*avro.Writer)
	defer writers.Put(w)
	w.Reset(nil)
	w.Error = nil
	w.WriteVal(schema, v)
	if w.Error != nil {
		return nil, fmt.Errorf("encoding %s value: %w", topic, w.Error)
	}
	body := w.Buffer()
	out := make([]byte, headerSize+len(body))
	out[0] = magicByte
	binary.BigEndian.PutUint32(out[1:], c.ids[topic])
	copy(out[headerSize:], body)
	return out, nil
}

// EncodeLevel encodes a stock.levels.v1 value.
func (c *Codec) EncodeLevel(v *StockLevel) ([]byte, error) {
	return c.frame(TopicLevels, LevelsSchema, v)
}

// EncodeChange encodes a stock.changes.v1 value.
func (c *Codec) EncodeChange(v *StockChange) ([]byte, error) {
	return c.frame(TopicChanges, ChangesSchema, v)
}

// EncodeAlert encodes a stock.alerts.v1 value.
func (c *Codec) EncodeAlert(v *StockAlert) ([]byte, error) {
	return c.frame(TopicAlerts, AlertsSchema, v)
}

func unframe(b []byte) (id uint32, body []byte, err error) {
	if len(b) > MaxValueBytes {
		return 0, nil, fmt.Errorf("%w: value of %d bytes (at most %d)", ErrOutOfBounds, len(b), MaxValueBytes)
	}
	if len(b) < headerSize || b[0] != magicByte {
		return 0, nil, ErrNotFramed
	}
	return binary.BigEndian.Uint32(b[1:headerSize]), b[headerSize:], nil
}

func decode(topic string, schema avro.Schema, b []byte, v any) error {
	_, body, err := unframe(b)
	if err != nil {
		return fmt.Errorf("decoding %s value: %w", topic, err)
	}
	if err := bounded.Unmarshal(schema, body, v); err != nil {
		return fmt.Errorf("decoding %s value: %w", topic, boundsError(err))
	}
	return nil
}

// DecodeLevel decodes a stock.levels.v1 value (not a tombstone: check for a
// nil value first).
func DecodeLevel(b []byte) (*StockLevel, error) {
	var v StockLevel
	if err := decode(TopicLevels, LevelsSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeChange decodes a stock.changes.v1 value.
func DecodeChange(b []byte) (*StockChange, error) {
	var v StockChange
	if err := decode(TopicChanges, ChangesSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeAlert decodes a stock.alerts.v1 value.
func DecodeAlert(b []byte) (*StockAlert, error) {
	var v StockAlert
	if err := decode(TopicAlerts, AlertsSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
