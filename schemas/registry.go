package schemas

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Schema Registry support (Confluent REST protocol). The producer registers
// the .avsc of each topic under the subject <topic>-value (the topic name
// strategy every Confluent-compatible client defaults to) and frames values
// with the ids it gets back; consumers in any language fetch the writer
// schema by that id. Registration (or, for a producer that does not own the
// subjects, Lookup of the ids their owner registered) is the only registry
// call on the producer's path: it happens once at start, never per record.

// RegistryTimeout bounds each request to the schema registry.
const RegistryTimeout = 10 * time.Second

// Subject is the registry subject of a topic's values.
func Subject(topic string) string { return topic + "-value" }

// Register registers the value schema of each contract topic (a key of
// topics: TopicLevels, TopicChanges, TopicAlerts) under the subject of the
// topic name it is produced to (its value: the contract name, or the name
// with a test's or deployment's prefix), sets that subject's compatibility
// to BACKWARD, and makes codec frame the topic's values with the id the
// registry gave.
//
// Compatibility is set before the schema is registered, so that the registry
// itself refuses a schema that could not read the subject's earlier values:
// Register then fails and codec keeps its previous ids. Registering a schema
// the subject already holds returns its existing id, so calling Register on
// every start is safe.
//
// codec must not be encoding values concurrently with Register.
func Register(ctx context.Context, client *sr.Client, codec *Codec, topics map[string]string) error {
	ids := make(map[string]uint32, len(topics))
	for _, contract := range slices.Sorted(maps.Keys(topics)) {
		text, ok := SchemaText(contract)
		if !ok {
			return fmt.Errorf("registering schemas: %q is not a topic of the contract", contract)
		}
		subject := Subject(topics[contract])
		res := client.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject)
		if err := res[0].Err; err != nil {
			return fmt.Errorf("setting BACKWARD compatibility on subject %s: %w", subject, err)
		}
		id, err := client.RegisterSchema(ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			return fmt.Errorf("registering the %s schema under subject %s: %w", contract, subject, err)
		}
		if id <= 0 || id > 1<<31-1 {
			return fmt.Errorf("registering the %s schema under subject %s: registry answered id %d", contract, subject, id)
		}
		ids[contract] = uint32(id)
	}
	for contract, id := range ids {
		codec.SetSchemaID(contract, id)
	}
	return nil
}

// Decoder decodes values by the schema id in their frame, for consumers
// that may meet values written with another version of a topic's schema
// than the one compiled into this package (BACKWARD compatibility lets a
// consumer that was upgraded first read the older values still in Kafka).
//
// An id is looked up in the registry once and remembered: when its schema
// is this package's schema of the topic (the common case), values decode
// with it directly, as DecodeLevel does; when it is another version, the
// writer's schema is resolved against this package's, so fields the writer
// lacks take their defaults and fields this package lacks are skipped. Id 0
// (no registry) always means this package's schema. A Decoder without a
// client treats every id as id 0: the package-level Decode functions do
// the same.
//
// The registry is asked only about an id never seen before; a Decoder is
// safe for concurrent use.
type Decoder struct {
	client *sr.Client

	mu      sync.Mutex
	readers map[decoderKey]avro.Schema
}

type decoderKey struct {
	topic string
	id    uint32
}

// NewDecoder returns a Decoder asking client (nil: no registry) about ids.
func NewDecoder(client *sr.Client) *Decoder {
	return &Decoder{client: client, readers: make(map[decoderKey]avro.Schema)}
}

// DecodeLevel decodes a stock.levels.v1 value (not a tombstone).
func (d *Decoder) DecodeLevel(ctx context.Context, b []byte) (*StockLevel, error) {
	var v StockLevel
	if err := d.decode(ctx, TopicLevels, LevelsSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeChange decodes a stock.changes.v1 value.
func (d *Decoder) DecodeChange(ctx context.Context, b []byte) (*StockChange, error) {
	var v StockChange
	if err := d.decode(ctx, TopicChanges, ChangesSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeAlert decodes a stock.alerts.v1 value.
func (d *Decoder) DecodeAlert(ctx context.Context, b []byte) (*StockAlert, error) {
	var v StockAlert
	if err := d.decode(ctx, TopicAlerts, AlertsSchema, b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (d *Decoder) decode(ctx context.Context, topic string, local avro.Schema, b []byte, v any) error {
	id, body, err := unframe(b)
	if err != nil {
		return fmt.Errorf("decoding %s value: %w", topic, err)
	}
	schema, err := d.reader(ctx, topic, local, id)
	if err != nil {
		return fmt.Errorf("decoding %s value: %w", topic, err)
	}
	if err := bounded.Unmarshal(schema, body, v); err != nil {
		return fmt.Errorf("decoding %s value with schema id %d: %w", topic, id, boundsError(err))
	}
	return nil
}

// reader returns the schema that decodes values of topic written with id.
func (d *Decoder) reader(ctx context.Context, topic string, local avro.Schema, id uint32) (avro.Schema, error) {
	if id == 0 || d.client == nil {
		return local, nil
	}
	k := decoderKey{topic, id}
	d.mu.Lock()
	s, ok := d.readers[k]
	d.mu.Unlock()
	if ok {
		return s, nil
	}
	// Two goroutines meeting a new id at once both ask the registry; the
	// answers are equal, so the race only costs a request.
	got, err := d.client.SchemaByID(ctx, int(id))
	if err != nil {
		return nil, fmt.Errorf("fetching schema id %d: %w", id, err)
	}
	if got.Type != sr.TypeAvro {
		return nil, fmt.Errorf("schema id %d is %s, not Avro", id, got.Type)
	}
	// A cache of its own: the writer's named types (same names, another
	// version) must not replace this package's in hamba/avro's global cache.
	writer, err := avro.ParseWithCache(got.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parsing schema id %d: %w", id, err)
	}
	s = local
	if writer.Fingerprint() != local.Fingerprint() {
		s, err = avro.NewSchemaCompatibility().Resolve(local, writer)
		if err != nil {
			return nil, fmt.Errorf("schema id %d cannot be read as this version's %s schema: %w", id, topic, err)
		}
	}
	d.mu.Lock()
	d.readers[k] = s
	d.mu.Unlock()
	return s, nil
}
