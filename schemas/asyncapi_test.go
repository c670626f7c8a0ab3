package schemas

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docs/asyncapi.yaml describes the topics for other teams' tools
// (scripts/asyncapi.sh validates it as AsyncAPI). It must say what this
// package says: the same topics, each message's payload the .avsc of its
// topic, and the CloudEvents headers and event types the producer stamps.
func TestAsyncAPIMatchesTheContract(t *testing.T) {
	const doc = "../docs/asyncapi.yaml"
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var d asyncAPIDoc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatalf("parsing %s: %v", doc, err)
	}
	for _, p := range asyncAPIProblems(d, filepath.Dir(doc)) {
		t.Error(p)
	}
}

// A document that drifted from the contract is caught: each mutation
// below must make checkAsyncAPI fail.
func TestAsyncAPICheckCatchesDrift(t *testing.T) {
	b, err := os.ReadFile("../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mutations := map[string]func(*asyncAPIDoc){
		"topic renamed": func(d *asyncAPIDoc) {
			c := d.Channels["levels"]
			c.Address = "stock.levels.v2"
			d.Channels["levels"] = c
		},
		"payload of another topic": func(d *asyncAPIDoc) {
			m := d.Components.Messages["StockLevel"]
			m.Payload.Schema.Ref = "../schemas/stock_changes.avsc"
			d.Components.Messages["StockLevel"] = m
		},
		"a header dropped": func(d *asyncAPIDoc) {
			h := d.Components.Schemas["CloudEventsHeaders"]
			h.Required = h.Required[1:]
			d.Components.Schemas["CloudEventsHeaders"] = h
		},
		"an event type missing": func(d *asyncAPIDoc) {
			h := d.Components.Schemas["CloudEventsHeaders"]
			p := h.Properties["ce_type"]
			p.Enum = p.Enum[1:]
			h.Properties["ce_type"] = p
			d.Components.Schemas["CloudEventsHeaders"] = h
		},
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			var d asyncAPIDoc
			if err := yaml.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			mutate(&d)
			if len(asyncAPIProblems(d, "../docs")) == 0 {
				t.Errorf("a document with %s passed the check", name)
			}
		})
	}
}

type asyncAPIDoc struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address  string `yaml:"address"`
		Messages map[string]struct {
			Ref string `yaml:"$ref"`
		} `yaml:"messages"`
		Bindings struct {
			Kafka struct {
				Topic              string         `yaml:"topic"`
				TopicConfiguration map[string]any `yaml:"topicConfiguration"`
			} `yaml:"kafka"`
		} `yaml:"bindings"`
	} `yaml:"channels"`
	Components struct {
		Messages map[string]struct {
			Name    string `yaml:"name"`
			Headers struct {
				Ref string `yaml:"$ref"`
			} `yaml:"headers"`
			Payload struct {
				SchemaFormat string `yaml:"schemaFormat"`
				Schema       struct {
					Ref string `yaml:"$ref"`
				} `yaml:"schema"`
			} `yaml:"payload"`
		} `yaml:"messages"`
		Schemas map[string]struct {
			Required   []string `yaml:"required"`
			Properties map[string]struct {
				Enum    []string `yaml:"enum"`
				Const   string   `yaml:"const"`
				Pattern string   `yaml:"pattern"`
			} `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

// asyncAPIProblems lists where d disagrees with this package and the .avsc
// files (found relative to dir, the document's folder).
func asyncAPIProblems(d asyncAPIDoc, dir string) (problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !strings.HasPrefix(d.AsyncAPI, "3.0") {
		errorf("asyncapi %q, want 3.0.x", d.AsyncAPI)
	}
	// Topic -> the .avsc its values are written with, and compaction.
	want := map[string]struct {
		avsc    string
		compact bool
	}{
		TopicLevels:  {"stock_levels.avsc", true},
		TopicChanges: {"stock_changes.avsc", false},
		TopicAlerts:  {"stock_alerts.avsc", false},
	}
	seen := map[string]bool{}
	for name, ch := range d.Channels {
		w, ok := want[ch.Address]
		if !ok {
			errorf("channel %s: topic %q is not one of the contract's", name, ch.Address)
			continue
		}
		seen[ch.Address] = true
		if ch.Bindings.Kafka.Topic != ch.Address {
			errorf("channel %s: kafka binding topic %q, address %q", name, ch.Bindings.Kafka.Topic, ch.Address)
		}
		policy, _ := ch.Bindings.Kafka.TopicConfiguration["cleanup.policy"].([]any)
		if got := len(policy) == 1 && policy[0] == "compact"; got != w.compact {
			errorf("channel %s: cleanup.policy %v, compacted should be %v", name, policy, w.compact)
		}
		if len(ch.Messages) != 1 {
			errorf("channel %s: %d messages, want 1", name, len(ch.Messages))
		}
		for _, ref := range ch.Messages {
			msg, ok := d.Components.Messages[strings.TrimPrefix(ref.Ref, "#/components/messages/")]
			if !ok {
				errorf("channel %s: message %q not in components", name, ref.Ref)
				continue
			}
			if filepath.Base(msg.Payload.Schema.Ref) != w.avsc {
				errorf("channel %s: payload %q, want %s", name, msg.Payload.Schema.Ref, w.avsc)
				continue
			}
			if !strings.HasPrefix(msg.Payload.SchemaFormat, "application/vnd.apache.avro") {
				errorf("channel %s: schemaFormat %q is not Avro", name, msg.Payload.SchemaFormat)
			}
			// The message is named as the Avro record it carries.
			raw, err := os.ReadFile(filepath.Join(dir, msg.Payload.Schema.Ref))
			if err != nil {
				errorf("channel %s: %v", name, err)
				continue
			}
			var rec struct{ Name string }
			if err := json.Unmarshal(raw, &rec); err != nil || rec.Name != msg.Name {
				errorf("channel %s: message %q carries Avro record %q (%v)", name, msg.Name, rec.Name, err)
			}
			if msg.Headers.Ref != "#/components/schemas/CloudEventsHeaders" {
				errorf("channel %s: headers %q, want the CloudEvents headers", name, msg.Headers.Ref)
			}
		}
	}
	for topic := range want {
		if !seen[topic] {
			errorf("topic %s has no channel", topic)
		}
	}

	h := d.Components.Schemas["CloudEventsHeaders"]
	headers := []string{HeaderID, HeaderType, HeaderSource, HeaderTime, HeaderSpecVersion, HeaderContentType}
	if !sameSet(h.Required, headers) {
		errorf("required headers %v, the producer stamps %v", h.Required, headers)
	}
	types := []string{TypeUpdated, TypeAdjusted, TypeTransferred, TypeReserved, TypeReleased, TypeLowStock}
	if got := h.Properties[HeaderType].Enum; !sameSet(got, types) {
		errorf("ce_type enum %v, the producer stamps %v", got, types)
	}
	if got := h.Properties[HeaderSpecVersion].Const; got != SpecVersion {
		errorf("ce_specversion %q, want %q", got, SpecVersion)
	}
	if got := h.Properties[HeaderContentType].Const; got != ContentType {
		errorf("content-type %q, want %q", got, ContentType)
	}
	if got := h.Properties[HeaderSource].Pattern; got != "^"+SourcePrefix {
		errorf("ce_source pattern %q, want ^%s", got, SourcePrefix)
	}
	return problems
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
