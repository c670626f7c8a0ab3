package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// hostileCase is one record a client that is not the project's puts on the
// levels topic, and the reason codes the projector may dead-letter it with.
type hostileCase struct {
	name    string
	kcat    bool // written with kcat -P, outside any transaction
	key     []byte
	value   []byte // nil: a tombstone
	headers []kgo.RecordHeader
	reasons []string
	foreign bool // in a transaction, but not named as the producer's
}

// headerCase names the hostile case a record is, so its dead letter can be
// matched to it (a dead letter cut to fit loses its headers: those are
// matched by partition and offset).
const headerCase = "e2e_case"

// TestHostileRecordsChangeNothing writes records the producer never wrote
// onto the levels topic of a running pipeline, with clients that are not
// the project's: kcat outside a transaction (noise, and a well-formed copy
// of a real record with its stock changed), and a franz-go client with a
// transactional id of its own (values that claim a billion warehouses or a
// terabyte string, truncated, noise, the wrong framing or record type, bad
// keys, 10 MB, totals that do not add up, another product's value, a
// tombstone without a position). Each would change what the API shows if it
// were applied. None may: the projector and the API keep running and
// answering, the API still equals PostgreSQL, every record is dead-lettered
// with its reason code and counted by reason, and a real change made
// afterwards still reaches the API.
func TestHostileRecordsChangeNothing(t *testing.T) {
	kcat := tool(t, "kcat")
	conn := db(t, 0, 0)
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	ids := []string{ident(t, "SKU"), ident(t, "SKU"), ident(t, "SKU")}
	for _, id := range ids {
		newProduct(t, conn, id, wh1, wh2)
	}
	p := startPipeline(t, conn)
	for _, id := range ids {
		waitFor(t, p.api, id, func(got product) bool { return got.OnHand == 140 })
	}
	topic := p.prefix + schemas.TopicLevels
	dlqTopic := topic + ".dlq"

	// A real record of each product, as the producer wrote it.
	last := lastInTopic(t, topic)
	orig := make([]*schemas.StockLevel, len(ids))
	for i, id := range ids {
		r := last[id]
		if r == nil || r.Value == nil {
			t.Fatalf("no level of %s in %s", id, topic)
		}
		lv, err := schemas.DecodeLevelRecord(r.Key, r.Value)
		if err != nil {
			t.Fatalf("the producer's record of %s: %v", id, err)
		}
		orig[i] = lv
	}
	realValue := last[ids[0]].Value

	// forged is a real level of product i with d more on hand in its first
	// warehouse, at a position just after the real one (before any later
	// source transaction): applied, the API would show it. With fixTotals
	// the value passes every check of the contract.
	forged := func(i int, d int32, fixTotals bool) []byte {
		t.Helper()
		lv := *orig[i]
		lv.Warehouses = slices.Clone(lv.Warehouses)
		w := &lv.Warehouses[0]
		w.OnHand += d
		w.Available += d
		w.Status = schemas.Status(int64(w.Available), int64(w.LowStockThreshold))
		if fixTotals {
			lv.OnHand += int64(d)
			lv.Available += int64(d)
			var threshold int64
			for _, w := range lv.Warehouses {
				threshold += int64(w.LowStockThreshold)
			}
			lv.Status = schemas.Status(lv.Available, threshold)
		}
		lv.Position.Index += 1000
		var c schemas.Codec
		v, err := c.EncodeLevel(&lv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = schemas.DecodeLevelRecord([]byte(lv.ProductID), v)
		if fixTotals && err != nil {
			t.Fatalf("the forged copy of %s breaks the contract (%v); it must be well-formed", lv.ProductID, err)
		}
		if !fixTotals && err == nil {
			t.Fatalf("the forged level of %s with lying totals passes the contract", lv.ProductID)
		}
		return v
	}
	// ceID is a producer-like CloudEvents id a little after the real one.
	ceID := func(i int) kgo.RecordHeader {
		pos := orig[i].Position.Value()
		pos.Index += 1000
		return kgo.RecordHeader{Key: schemas.HeaderID, Value: []byte(pos.String() + "/" + ids[i])}
	}
	frame := func(body ...[]byte) []byte { return append([]byte{0, 0, 0, 0, 0}, bytes.Join(body, nil)...) }
	noise := func(seed uint64, n int) []byte {
		r := rand.New(rand.NewPCG(seed, seed+1))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	var c schemas.Codec
	change, err := c.EncodeChange(&schemas.StockChange{Op: schemas.OpUpdate, ProductID: ids[1], WarehouseID: wh1,
		After:      &schemas.InventoryRow{ProductID: ids[1], WarehouseID: wh1, OnHand: 1_000_000},
		ChangeKind: "receive", Position: orig[1].Position, CommitTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	bounds := []string{"undecodable", "breaks_contract"}
	id0, id1, id2 := []byte(ids[0]), []byte(ids[1]), []byte(ids[2])
	cases := []hostileCase{
		{name: "kcat_random", kcat: true, key: id0, value: noise(1, 300), reasons: []string{"not_transactional"}},
		{name: "kcat_forged_valid", kcat: true, key: id0, value: forged(0, 1000, true),
			headers: []kgo.RecordHeader{ceID(0)}, reasons: []string{"not_transactional"}},
		// product id, five zero longs and status 0, then 10^9 warehouses
		{name: "billion_warehouses", key: id1, value: frame(avroLong(int64(len(id1))), id1,
			avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(0), avroLong(1_000_000_000)),
			reasons: bounds},
		{name: "huge_string", key: id1, value: frame(avroLong(1 << 40)), reasons: bounds},
		{name: "truncated", key: id0, value: realValue[:len(realValue)/2], reasons: []string{"undecodable"}},
		{name: "random", key: id1, value: noise(2, 4096), reasons: bounds},
		{name: "wrong_magic", key: id0, value: append([]byte{1}, realValue[1:]...), reasons: []string{"undecodable"}},
		{name: "change_record", key: id1, value: change, reasons: bounds},
		{name: "control_key", key: append(slices.Clone(id2), 0x07), value: forged(2, 1000, true), reasons: []string{"bad_key"}},
		{name: "long_key", key: bytes.Repeat([]byte("K"), 300), value: forged(2, 1000, true), reasons: []string{"bad_key"}},
		{name: "ten_mb", key: id2, value: frame(bytes.Repeat([]byte{2}, 10<<20)), reasons: []string{"breaks_contract"}},
		{name: "lying_totals", key: id1, value: forged(1, 500, false), headers: []kgo.RecordHeader{ceID(1)},
			reasons: []string{"breaks_contract"}},
		{name: "other_product", key: id2, value: forged(1, 1000, true), headers: []kgo.RecordHeader{ceID(2)},
			reasons: []string{"breaks_contract"}},
		{name: "tombstone_without_position", key: id2, value: nil, reasons: []string{"bad_tombstone"}},
		// well-formed, in a transaction, but another tool's: no ce_source
		{name: "another_writer", key: id0, value: forged(0, 1000, true), headers: []kgo.RecordHeader{ceID(0)},
			reasons: []string{"not_ours"}, foreign: true},
		// and a forged dead-letter reason, which must not pass for ours
		{name: "forged_dlq_header", key: id1, value: noise(3, 64),
			headers: []kgo.RecordHeader{{Key: "dlq_reason_code", Value: []byte("forged")}}, reasons: bounds},
	}
	for i := range cases {
		cases[i].headers = append(cases[i].headers, kgo.RecordHeader{Key: headerCase, Value: []byte(cases[i].name)})
		if !cases[i].kcat && !cases[i].foreign {
			// The worst case: a writer naming itself as the producer.
			cases[i].headers = append(cases[i].headers, kgo.RecordHeader{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "forged")})
		}
	}

	// (a) kcat, outside any transaction, partitioned by key as Java
	// clients (and the producer) do.
	dir := t.TempDir()
	for _, hc := range cases {
		if !hc.kcat {
			continue
		}
		file := filepath.Join(dir, hc.name)
		if err := os.WriteFile(file, hc.value, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"-P", "-q", "-b", strings.Join(testenv.KafkaBrokers(), ","), "-t", topic,
			"-k", string(hc.key), "-X", "topic.partitioner=murmur2_random"}
		for _, h := range hc.headers {
			args = append(args, "-H", h.Key+"="+string(h.Value))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, kcat, append(args, file)...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("kcat -P %s: %v\n%s", hc.name, err, out)
		}
	}

	// (b) a plain franz-go client with a transactional id of its own, every
	// record in one committed transaction. The 10 MB record needs the
	// topic's limit raised first.
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adminCl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const maxBytes = 16 << 20
	altered, err := kadm.NewClient(adminCl).AlterTopicConfigs(ctx,
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: ptr(strconv.Itoa(maxBytes))}}, topic)
	if err == nil {
		_, err = altered.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("raising max.message.bytes of %s: %v", topic, err)
	}
	txn, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...),
		kgo.TransactionalID(testenv.Name(t, "hostile_txn")), kgo.ProducerBatchMaxBytes(maxBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	var recs []*kgo.Record
	for _, hc := range cases {
		if !hc.kcat {
			recs = append(recs, &kgo.Record{Topic: topic, Key: hc.key, Value: hc.value, Headers: hc.headers})
		}
	}
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = txn.EndTransaction(ctx, kgo.TryAbort)
		t.Fatalf("writing the hostile records: %v", err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("committing the hostile records: %v", err)
	}
	// A dead letter cut to fit loses the record's headers: match it by where
	// the record was.
	at := map[string]string{}
	for _, r := range recs {
		at[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = caseOf(r.Headers)
	}

	// Once the projector's group committed past the hostile records, each
	// of them was applied or dead-lettered: a batch's dead letters are
	// acknowledged before its offset can move.
	testenv.Eventually(t, 60*time.Second, "the projector to commit past the hostile records", pjCaughtUp(t, topic, p.group))
	got := map[string]*kgo.Record{}
	for _, r := range readAll(t, dlqTopic) {
		name := caseOf(r.Headers)
		if name == "" {
			name = at[header(r, "dlq_partition")+"/"+header(r, "dlq_offset")]
		}
		switch {
		case name == "":
			t.Errorf("a dead letter that is not one of the test's: key %.64q, headers %s", r.Key, headerList(r))
		case got[name] != nil:
			t.Errorf("case %s dead-lettered twice", name)
		default:
			got[name] = r
		}
	}

	t.Run("dead letters carry the reason and the record", func(t *testing.T) {
		wantReasons := map[string]float64{}
		var seen []string
		for _, hc := range cases {
			r := got[hc.name]
			if r == nil {
				t.Errorf("%s: not dead-lettered", hc.name)
				continue
			}
			code := header(r, "dlq_reason_code")
			wantReasons[code]++
			seen = append(seen, hc.name+"="+code)
			if !slices.Contains(hc.reasons, code) {
				t.Errorf("%s: dlq_reason_code %q, want one of %v (dlq_reason %q)", hc.name, code, hc.reasons, header(r, "dlq_reason"))
			}
			if header(r, "dlq_reason") == "" || header(r, "dlq_topic") != topic {
				t.Errorf("%s: dlq headers %s", hc.name, headerList(r))
			}
			if orig := header(r, "dlq_original_bytes"); orig != "" {
				n, _ := strconv.Atoi(orig)
				if hc.name != "ten_mb" || n < len(hc.value) || len(r.Value) >= len(hc.value) || !bytes.HasPrefix(hc.value, r.Value) {
					t.Errorf("%s: cut to %d bytes of value, dlq_original_bytes %q", hc.name, len(r.Value), orig)
				}
				continue
			}
			if hc.name == "ten_mb" {
				t.Errorf("the 10 MB record was dead-lettered whole (%d bytes of value), without dlq_original_bytes", len(r.Value))
			}
			if !bytes.Equal(r.Key, hc.key) || !bytes.Equal(r.Value, hc.value) || (r.Value == nil) != (hc.value == nil) {
				t.Errorf("%s: dead letter's key or value differ from the record's", hc.name)
			}
		}
		t.Logf("reason codes: %s", strings.Join(seen, " "))

		// Counted by reason: exactly the dead letters, nothing the
		// producer wrote.
		bad := scrapeLabelled(t, p.metrics, "stock_projector_bad_records_total")
		for reason, n := range wantReasons {
			if bad[`reason="`+reason+`"`] != n {
				t.Errorf("bad_records_total{reason=%q} = %v, want %v", reason, bad[`reason="`+reason+`"`], n)
			}
		}
		var sum float64
		for _, n := range bad {
			sum += n
		}
		if sum != float64(len(cases)) {
			t.Errorf("bad_records_total sums to %v over %v, want %d", sum, bad, len(cases))
		}
		for _, reason := range []string{"not_transactional", "not_ours", "bad_key", "undecodable", "breaks_contract", "bad_tombstone"} {
			if bad[`reason="`+reason+`"`] == 0 {
				t.Errorf("no record counted with reason %s: %v", reason, bad)
			}
		}
		if n := scrapeMetric(t, p.metrics, "stock_projector_dead_lettered_total"); n != float64(len(cases)) {
			t.Errorf("dead_lettered_total = %v, want %d", n, len(cases))
		}
		if n := p.projector.count(`"msg":"dead-lettering bad record"`); n != len(cases) {
			t.Errorf("the projector logged %d dead-lettered records, want %d", n, len(cases))
		}
	})

	t.Run("processes still run and answer", func(t *testing.T) {
		for _, pr := range []*proc{p.projector, p.queryAPI} {
			if err := running(pr); err != nil {
				t.Fatalf("%s: %v", pr.name, err)
			}
		}
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			t.Fatalf("the projector's /metrics: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the projector's /metrics: %d", resp.StatusCode)
		}
	})

	t.Run("the API still equals PostgreSQL", func(t *testing.T) {
		if msg := apiEqualsPG(t, p.api, conn, ids); msg != "" {
			t.Fatal(msg)
		}
	})

	outer := t // the restarted producer must outlive its subtest
	t.Run("the producer restarts past them", func(t *testing.T) {
		// Its state store lost (a new disk), its state is rebuilt from the
		// levels topic, which now holds the hostile records: they are
		// skipped, and the start goes on. (With the store intact, the
		// start would not read the topic at all.)
		p.producer.stop()
		if err := os.RemoveAll(p.stateDir); err != nil {
			t.Fatal(err)
		}
		p.producer = start(outer, "producer", p.producerArgs...)
		p.producer.waitLog(t, `"msg":"resuming stream"`, 60*time.Second)
		if !p.producer.logged(`"msg":"skipping a record the producer did not write"`) {
			t.Fatal("the restarted producer did not report the records it skipped")
		}
	})

	t.Run("a real change still flows", func(t *testing.T) {
		for _, id := range ids {
			exec1(t, conn, `SELECT stock_receive($1, $2, 7, 'after-hostile')`, id, wh1)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			msg := apiEqualsPG(t, p.api, conn, ids)
			if msg == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a real change: %s", msg)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, id := range ids {
			if got := waitFor(t, p.api, id, func(product) bool { return true }); got.warehouse(wh1).OnHand != 107 {
				t.Fatalf("%s: %s on_hand %d after receiving 7, want 107", id, wh1, got.warehouse(wh1).OnHand)
			}
		}
	})
}

// avroLong is Avro's zig-zag varint of v.
func avroLong(v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	var out []byte
	for u >= 0x80 {
		out = append(out, byte(u)|0x80)
		u >>= 7
	}
	return append(out, byte(u))
}

func caseOf(hs []kgo.RecordHeader) string {
	for _, h := range hs {
		if h.Key == headerCase {
			return string(h.Value)
		}
	}
	return ""
}

// header is the value of the record's header k ("" when absent).
func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func headerList(r *kgo.Record) string {
	var b strings.Builder
	for _, h := range r.Headers {
		fmt.Fprintf(&b, "%s=%.200q ", h.Key, h.Value)
	}
	return b.String()
}

// scrapeLabelled reads every sample of a labelled metric from a program's
// /metrics, by its label set as written between the braces.
func scrapeLabelled(t *testing.T, addr, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		labels, v, ok := strings.Cut(rest, "} ")
		if !ok {
			t.Fatalf("metric line %q", sc.Text())
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[labels] = f
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// running reports why a program is no longer running (nil while it runs):
// it was waited for, or it exited and is a zombie nobody waited for yet.
func running(p *proc) error {
	if p.cmd.ProcessState != nil {
		return fmt.Errorf("exited: %v", p.cmd.ProcessState)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("process %d is gone", p.cmd.Process.Pid)
		}
		return nil // no procfs: the /metrics and API checks decide
	}
	// pid (comm) state ...: the state follows the last parenthesis.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return fmt.Errorf("process %d exited (zombie)", p.cmd.Process.Pid)
	}
	return nil
}

// apiEqualsPG reports the first product whose API answer differs from its
// inventory_levels rows in PostgreSQL ("" when all are equal).
func apiEqualsPG(t *testing.T, api string, conn *pgx.Conn, ids []string) string {
	t.Helper()
	want := pgRows(t, conn, ids)
	for _, id := range ids {
		resp, err := http.Get(api + "/v1/stock/" + id)
		if err != nil {
			return fmt.Sprintf("%s: %v", id, err)
		}
		var got product
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return fmt.Sprintf("%s: the API answered %d (%v)", id, resp.StatusCode, err)
		}
		rows := want[id]
		var onHand, reserved int64
		for _, r := range rows {
			onHand += int64(r.OnHand)
			reserved += int64(r.Reserved)
		}
		if got.OnHand != onHand || got.Reserved != reserved || len(got.Warehouses) != len(rows) {
			return fmt.Sprintf("%s: the API has on_hand %d reserved %d in %d warehouses, PostgreSQL %d, %d in %d",
				id, got.OnHand, got.Reserved, len(got.Warehouses), onHand, reserved, len(rows))
		}
		for wh, r := range rows {
			if w := got.warehouse(wh); w.WarehouseID != wh || w.OnHand != int64(r.OnHand) || w.Reserved != int64(r.Reserved) {
				return fmt.Sprintf("%s in %s: the API has %+v, PostgreSQL on_hand %d reserved %d", id, wh, w, r.OnHand, r.Reserved)
			}
		}
	}
	return ""
}
