package schemas

import (
	"context"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// After a later version adds an optional field at the end of the levels
// record, readers of this version keep reading what it writes: the
// projector's decoding (this package's schema, whatever the id) and a
// registry-aware reader (the writer's schema resolved against ours) both
// get every field they know, and a reader of the later version sees the
// new field. This is why the procedure appends new fields with a default.
func TestThisVersionReadsTheNextOne(t *testing.T) {
	ctx := context.Background()
	nextText, next := readSchema(t, nextLevels)
	want := sampleLevel()

	// What a producer of the next version writes: every field of ours plus
	// the new one.
	point := int64(40)
	asMap := levelAsMap(t, want)
	asMap["reorder_point"] = &point
	body, err := avro.Marshal(next, asMap)
	if err != nil {
		t.Fatal(err)
	}
	fake := srfake.New()
	defer fake.Close()
	id, _, err := fake.RegisterSchema(Subject(TopicLevels), sr.Schema{Schema: nextText, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	value := frameWith(uint32(id), body)

	t.Run("the projector's decoding", func(t *testing.T) {
		got, err := DecodeLevel(value)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("a registry-aware reader of this version", func(t *testing.T) {
		cl, err := sr.NewClient(sr.URLs(fake.URL()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := NewDecoder(cl).DecodeLevel(ctx, value)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("a reader of the next version", func(t *testing.T) {
		got := map[string]any{}
		if err := avro.Unmarshal(next, body, &got); err != nil {
			t.Fatal(err)
		}
		if p, _ := got["reorder_point"].(int64); p != point {
			t.Fatalf("reorder_point %v, want %d", got["reorder_point"], point)
		}
		if got["product_id"] != want.ProductID {
			t.Fatalf("product_id %v, want %s", got["product_id"], want.ProductID)
		}
	})
}

// levelAsMap is l as the generic map Avro encodes for a schema that has
// more fields than StockLevel.
func levelAsMap(t *testing.T, l *StockLevel) map[string]any {
	t.Helper()
	b, err := avro.Marshal(LevelsSchema, l)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := avro.Unmarshal(LevelsSchema, b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
