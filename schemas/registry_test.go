package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/stockpipe/stock/internal/testenv"
)

// The previous version of stock.levels.v1 (the current schema without its
// optional snapshot field) and a breaking next version (a field added
// without a default). Both are test fixtures, not the contract.
const (
	previousLevels = "testdata/stock_levels.previous.avsc"
	breakingLevels = "testdata/stock_levels.breaking.avsc"
	// nextLevels is the current schema with an optional field appended, as
	// the contract's procedure for adding a field says (kafka-contract.md).
	nextLevels = "testdata/stock_levels.next.avsc"
)

func readSchema(t *testing.T, path string) (string, avro.Schema) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A cache of its own: the fixtures reuse the contract's type names.
	s, err := avro.ParseWithCache(string(b), "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return string(b), s
}

func sampleLevel() *StockLevel {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)
	return &StockLevel{
		ProductID: "SKU-1", OnHand: 140, Reserved: 5, SafetyStock: 10, Available: 125, Status: StatusInStock,
		Warehouses: []WarehouseStock{
			{WarehouseID: "WH-A", OnHand: 100, Reserved: 5, SafetyStock: 5, Available: 90, LowStockThreshold: 10,
				Status: StatusInStock, Version: 3, LastChangeKind: "adjust", LastChangeRef: "r1", UpdatedAt: at},
			{WarehouseID: "WH-B", OnHand: 40, SafetyStock: 5, Available: 35, LowStockThreshold: 10,
				Status: StatusInStock, Version: 1, LastChangeKind: "receive", LastChangeRef: "r0", UpdatedAt: at},
		},
		Position: Position{LSN: 0x16B3748, Index: 3}, TxID: 777, CommitTime: at,
	}
}

func frameWith(id uint32, body []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(body))
	binary.BigEndian.PutUint32(out[1:], id)
	return append(out, body...)
}

func contractTopics(prefix string) map[string]string {
	return map[string]string{
		TopicLevels:  prefix + TopicLevels,
		TopicChanges: prefix + TopicChanges,
		TopicAlerts:  prefix + TopicAlerts,
	}
}

// checkRegistered asserts what a consumer relies on after Register: each
// topic's subject holds the contract's schema at BACKWARD, and the codec
// frames values with that schema's id.
func checkRegistered(t *testing.T, ctx context.Context, cl *sr.Client, codec *Codec, topics map[string]string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for contract, topic := range topics {
		subject := Subject(topic)
		text, _ := SchemaText(contract)
		ss, err := cl.SchemaByVersion(ctx, subject, -1)
		if err != nil {
			t.Fatalf("latest schema of %s: %v", subject, err)
		}
		got, err := avro.ParseWithCache(ss.Schema.Schema, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatalf("parsing the registry's %s schema: %v", subject, err)
		}
		if want := avro.MustParse(text); got.Fingerprint() != want.Fingerprint() {
			t.Fatalf("%s holds a schema other than %s's:\n%s", subject, contract, ss.Schema.Schema)
		}
		compat := cl.Compatibility(ctx, subject)
		if compat[0].Err != nil || compat[0].Level != sr.CompatBackward {
			t.Fatalf("%s compatibility = %v (%v), want BACKWARD", subject, compat[0].Level, compat[0].Err)
		}
		if codec.ids[contract] != uint32(ss.ID) {
			t.Fatalf("codec frames %s with id %d, registry has id %d", contract, codec.ids[contract], ss.ID)
		}
		ids[contract] = ss.ID
	}
	b, err := codec.EncodeLevel(sampleLevel())
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(b[1:headerSize]); got != uint32(ids[TopicLevels]) {
		t.Fatalf("encoded level carries schema id %d, want %d", got, ids[TopicLevels])
	}
	return ids
}

// TestRegister runs against franz-go's in-process fake of the Confluent
// REST API (srfake); TestRegistry repeats it against the real registry.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	fake := srfake.New()
	defer fake.Close()
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	topics := contractTopics("test.")

	var codec Codec
	if err := Register(ctx, cl, &codec, topics); err != nil {
		t.Fatalf("Register: %v", err)
	}
	ids := checkRegistered(t, ctx, cl, &codec, topics)

	t.Run("again on restart gives the same ids", func(t *testing.T) {
		var again Codec
		if err := Register(ctx, cl, &again, topics); err != nil {
			t.Fatalf("Register: %v", err)
		}
		for contract, id := range ids {
			if again.ids[contract] != uint32(id) {
				t.Fatalf("%s: id %d on the second run, %d on the first", contract, again.ids[contract], id)
			}
		}
	})

	t.Run("an unknown topic is refused", func(t *testing.T) {
		var c Codec
		if err := Register(ctx, cl, &c, map[string]string{"stock.other.v1": "stock.other.v1"}); err == nil {
			t.Fatal("Register accepted a topic outside the contract")
		}
	})

	t.Run("a registry error leaves the codec as it was", func(t *testing.T) {
		fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodPost {
				http.Error(w, `{"error_code":50001,"message":"store down"}`, http.StatusInternalServerError)
				return true
			}
			return false
		})
		defer fake.ClearInterceptors()
		var c Codec
		c.SetSchemaID(TopicLevels, 42)
		if err := Register(ctx, cl, &c, topics); err == nil {
			t.Fatal("Register succeeded while the registry failed")
		}
		if c.ids[TopicLevels] != 42 || len(c.ids) != 1 {
			t.Fatalf("codec ids changed to %v after a failed Register", c.ids)
		}
	})
}

func TestDecoder(t *testing.T) {
	ctx := context.Background()
	fake := srfake.New()
	defer fake.Close()
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	var codec Codec
	if err := Register(ctx, cl, &codec, contractTopics("")); err != nil {
		t.Fatal(err)
	}
	prevText, prevSchema := readSchema(t, previousLevels)
	prevID, _, err := fake.RegisterSchema(Subject(TopicLevels), sr.Schema{Schema: prevText, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	want := sampleLevel()
	prevBody, err := avro.Marshal(prevSchema, want)
	if err != nil {
		t.Fatal(err)
	}
	streamed := *want
	snap := *want
	snap.Snapshot = true
	current, err := codec.EncodeLevel(&snap)
	if err != nil {
		t.Fatal(err)
	}
	unregistered, err := (&Codec{}).EncodeLevel(&streamed)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		client  *sr.Client
		value   []byte
		want    *StockLevel
		wantErr bool
	}{
		{"current schema id", cl, current, &snap, false},
		{"id 0 without a registry", cl, unregistered, &streamed, false},
		{"previous version: the added field takes its default", cl, frameWith(uint32(prevID), prevBody), &streamed, false},
		{"an id the registry does not know", cl, frameWith(9999, prevBody), nil, true},
		{"no client: every id is this version", nil, current, &snap, false},
		{"not framed", cl, []byte{1, 2}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.client)
			// Twice: the second decode comes from the remembered schema.
			for range 2 {
				got, err := d.DecodeLevel(ctx, tt.value)
				if tt.wantErr {
					if err == nil {
						t.Fatalf("decoded %+v, want an error", got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("decoded\n%+v\nwant\n%+v", got, tt.want)
				}
			}
		})
	}

	t.Run("a schema id of another record is refused", func(t *testing.T) {
		ids := codec.ids
		b, err := codec.EncodeLevel(want)
		if err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint32(b[1:], ids[TopicAlerts])
		if got, err := NewDecoder(cl).DecodeLevel(ctx, b); err == nil {
			t.Fatalf("decoded a level framed with the alerts schema id: %+v", got)
		}
	})
}

// compatCase is one schema evolution step: next must read values written
// with prev for BACKWARD compatibility.
type compatCase struct {
	name       string
	prev, next string // .avsc files
	compatible bool
}

var compatCases = []compatCase{
	{"current levels read the previous version", previousLevels, "stock_levels.avsc", true},
	{"a field without a default breaks BACKWARD", "stock_levels.avsc", breakingLevels, false},
	{"an optional field with a default, appended", "stock_levels.avsc", nextLevels, true},
}

// TestBackwardCompatibility checks the contract's schema against its
// previous version offline, with hamba/avro's checker (the same rules the
// registry applies); TestRegistry repeats it against the real registry.
func TestBackwardCompatibility(t *testing.T) {
	for _, tc := range compatCases {
		t.Run(tc.name, func(t *testing.T) {
			_, prev := readSchema(t, tc.prev)
			_, next := readSchema(t, tc.next)
			err := avro.NewSchemaCompatibility().Compatible(next, prev)
			if tc.compatible && err != nil {
				t.Fatalf("%s cannot read values written with %s: %v", tc.next, tc.prev, err)
			}
			if !tc.compatible && err == nil {
				t.Fatalf("%s was accepted as BACKWARD compatible with %s", tc.next, tc.prev)
			}
		})
	}
}

// TestRegistry runs the registry path against the real Confluent-compatible
// registry of the local stack (scripts/registry.sh up).
func TestRegistry(t *testing.T) {
	url := testenv.RequireSchemaRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := NewRegistryClient(RegistryConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	deleteSubjects := func(subjects ...string) {
		t.Cleanup(func() {
			for _, s := range subjects {
				_, _ = cl.DeleteSubject(context.Background(), s, sr.SoftDelete)
				_, _ = cl.DeleteSubject(context.Background(), s, sr.HardDelete)
			}
		})
	}

	t.Run("register", func(t *testing.T) {
		topics := contractTopics(testenv.Name(t, "schemas") + ".")
		for _, topic := range topics {
			deleteSubjects(Subject(topic))
		}
		var codec Codec
		if err := Register(ctx, cl, &codec, topics); err != nil {
			t.Fatalf("Register: %v", err)
		}
		ids := checkRegistered(t, ctx, cl, &codec, topics)

		var again Codec
		if err := Register(ctx, cl, &again, topics); err != nil {
			t.Fatalf("Register on restart: %v", err)
		}
		if !reflect.DeepEqual(again.ids, codec.ids) {
			t.Fatalf("ids on restart %v, first %v", again.ids, codec.ids)
		}

		// A consumer that only has the registry reads the value back.
		b, err := codec.EncodeLevel(sampleLevel())
		if err != nil {
			t.Fatal(err)
		}
		got, err := NewDecoder(cl).DecodeLevel(ctx, b)
		if err != nil || !reflect.DeepEqual(got, sampleLevel()) {
			t.Fatalf("decoded %+v, %v", got, err)
		}

		// Register left the subject at BACKWARD: the registry itself now
		// refuses a breaking version.
		text, _ := readSchema(t, breakingLevels)
		_, err = cl.RegisterSchema(ctx, Subject(topics[TopicLevels]), sr.Schema{Schema: text, Type: sr.TypeAvro}, -1, -1)
		var re *sr.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
			t.Fatalf("registering a breaking version: %v, want 409 Conflict", err)
		}
		if _, err := cl.SchemaByID(ctx, ids[TopicLevels]); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range compatCases {
		t.Run(tc.name, func(t *testing.T) {
			subject := testenv.Name(t, "compat") + "-value"
			deleteSubjects(subject)
			prev, _ := readSchema(t, tc.prev)
			next, _ := readSchema(t, tc.next)
			if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject); res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			if _, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: prev, Type: sr.TypeAvro}, -1, -1); err != nil {
				t.Fatalf("registering %s: %v", tc.prev, err)
			}
			res, err := cl.CheckCompatibility(ctx, subject, -1, sr.Schema{Schema: next, Type: sr.TypeAvro})
			if err != nil {
				t.Fatalf("checking %s: %v", tc.next, err)
			}
			if res.Is != tc.compatible {
				t.Fatalf("registry says %s after %s is compatible=%v %v, want %v", tc.next, tc.prev, res.Is, res.Messages, tc.compatible)
			}
			_, err = cl.RegisterSchema(ctx, subject, sr.Schema{Schema: next, Type: sr.TypeAvro}, -1, -1)
			if tc.compatible != (err == nil) {
				t.Fatalf("registering %s after %s: %v (compatible: %v)", tc.next, tc.prev, err, tc.compatible)
			}
		})
	}
}
