package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// The operator's commands are wired: they print for a terminal on the real
// stack without starting a projector or its metrics endpoint.
func TestToolsPrintForATerminal(t *testing.T) {
	kcl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	topic := testenv.Name(t, "test_levels")
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopic(context.Background(), topic) })
	if err := kcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("k")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prefix := storetest.Prefix(t, storetest.Client(t))
	getenv := testenv.Getenv(map[string]string{"STOCK_KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(), ","), "STOCK_REDIS_ADDR": testenv.RedisAddr()})
	group := testenv.Name(t, "test_projector")
	common := []string{"--topic", topic, "--group", group, "--redis-prefix", prefix,
		"--metrics-addr", "127.0.0.1:1"} // a port no one may listen on: the tools must not try

	for _, tt := range []struct {
		args []string
		want []string
	}{
		// A group that never committed lags by the whole topic.
		{[]string{"status"}, []string{"group " + group + ": none", "total lag 1", "\n0 ", "\n1 ", "dead letters in " + topic + ".dlq: 0 held"}},
		{[]string{"dlq", "list"}, []string{"0 dead letters in " + topic + ".dlq"}},
		{[]string{"dlq", "replay", "--reason", "bad_key"}, []string{"replayed 0 dead letters"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append(tt.args, common...), getenv, &out)
			// A Redis that never held the cache is a state status
			// reports, not an error.
			if err != nil {
				t.Errorf("run: %v\n%s", err, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"dlq", "list", "--reason", "bogus"}, common...), getenv, &out); err == nil ||
		!strings.Contains(err.Error(), "unknown reason code") {
		t.Errorf("an unknown reason code: %v, want it named", err)
	}
}
