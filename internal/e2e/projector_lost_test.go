package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// A running projector whose Redis loses the cache (every key of its prefix
// deleted, as FLUSHDB or a restart without persistence would) notices it by
// itself, rebuilds the cache from the topic and keeps projecting: once while
// the source is quiet (no write runs into the loss; the periodic check finds
// it), once under a steady write load (the writes find it). Each time Redis
// ends equal to the last record of every product in the topic, key for key
// what a fresh replay builds, the loss is counted, and the process never
// exits.
func TestProjectorRebuildsCacheLostWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs projector processes under load")
	}
	topic := pjTopic(t, 3)
	const products = 1000
	ids := fillTopic(t, topic, products, 3)
	rdb := storetest.Client(t)
	st := pjStore(t)
	metrics := freePort(t)
	group := testenv.Name(t, "pj_group")
	args := projectorArgs(topic, group, st.Prefix(), "--cache-check-interval", "500ms")
	for i := range args {
		if args[i] == "--metrics-addr" {
			args[i+1] = metrics
		}
	}
	p := start(t, "projector", args...)

	last := lastInTopic(t, topic)
	testenv.Eventually(t, time.Minute, "the live projection", func() string { return matchesTopic(t, st, last) })
	// The watermarks are in the dump: wait for the group's commits, which
	// follow the batches' watermarks.
	testenv.Eventually(t, time.Minute, "the group to commit the topic", pjCaughtUp(t, topic, group))
	before := dumpActive(t, rdb, st)

	t.Run("quiet source", func(t *testing.T) {
		storetest.DeletePrefix(t, rdb, st.Prefix())
		p.waitLog(t, "cache rebuilt while running", time.Minute)
		testenv.Eventually(t, time.Minute, "the rebuilt cache", func() string { return matchesTopic(t, st, last) })
		diffDumps(t, "before the loss vs rebuilt", before, dumpActive(t, rdb, st))
	})

	t.Run("under load", func(t *testing.T) {
		prod := newTxProducer(t)
		const rounds = 20
		for r := 1; r <= rounds; r++ {
			recs := make([]*kgo.Record, 0, products)
			for i, id := range ids {
				p := position.Position{LSN: uint64(100+r) * 1000, Index: uint32(i + 1)}
				if i%41 == r%41 {
					recs = append(recs, tombstoneRecord(topic, id, p))
					continue
				}
				recs = append(recs, levelRecord(t, topic, id, p, int32((r*5+i)%11)))
			}
			if err := prod.write(recs...); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
			if r == rounds/2 {
				storetest.DeletePrefix(t, rdb, st.Prefix())
			}
			time.Sleep(50 * time.Millisecond)
		}
		last := lastInTopic(t, topic)
		testenv.Eventually(t, time.Minute, "the second rebuild", func() string {
			if n := p.count("cache rebuilt while running"); n != 2 {
				return fmt.Sprintf("%d rebuilds logged", n)
			}
			return ""
		})
		testenv.Eventually(t, time.Minute, "the cache rebuilt under load", func() string { return matchesTopic(t, st, last) })

		// Nothing lost and nothing left over: the same keys and values as
		// a replay of the topic into an empty Redis.
		ref := pjStore(t)
		refGroup := testenv.Name(t, "pj_group")
		start(t, "projector", projectorArgs(topic, refGroup, ref.Prefix())...)
		testenv.Eventually(t, time.Minute, "the reference replay", func() string { return matchesTopic(t, ref, last) })
		testenv.Eventually(t, time.Minute, "the reference group to commit the topic", pjCaughtUp(t, topic, refGroup))
		testenv.Eventually(t, time.Minute, "the live group to commit the topic", pjCaughtUp(t, topic, group))
		diffDumps(t, "replay vs rebuilt under load", dumpActive(t, rdb, ref), dumpActive(t, rdb, st))
	})

	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the projector exited: %v", err)
	}
	for name, want := range map[string]float64{
		"stock_projector_cache_lost_total":      2,
		"stock_projector_cache_recovered_total": 2,
	} {
		if got := scrapeMetric(t, metrics, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// count is how many times the program's output contains s.
func (p *proc) count(s string) int {
	b, _ := os.ReadFile(p.out.Name())
	return strings.Count(string(b), s)
}

// scrapeMetric reads one unlabelled sample from a program's /metrics.
func scrapeMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s not in the metrics of %s", name, addr)
	return 0
}

// The projector program on a Redis Cluster (--redis-cluster, seed nodes by
// commas) projects the topic into the Cluster layout, and rebuilds it when
// every key is deleted under it.
func TestProjectorOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	rdb, addrs := storetest.Cluster(t)
	st := storetest.NewOn(t, rdb)
	topic := pjTopic(t, 3)
	fillTopic(t, topic, 500, 2)
	last := lastInTopic(t, topic)
	args := projectorArgs(topic, testenv.Name(t, "pj_group"), st.Prefix(), "--redis-cluster", "--cache-check-interval", "500ms")
	for i := range args {
		if args[i] == "--redis-addr" {
			args[i+1] = strings.Join(addrs, ",")
		}
	}
	p := start(t, "projector", args...)
	testenv.Eventually(t, time.Minute, "the projection on the cluster", func() string { return matchesTopic(t, st, last) })
	storetest.DeletePrefix(t, rdb, st.Prefix())
	p.waitLog(t, "cache rebuilt while running", time.Minute)
	testenv.Eventually(t, time.Minute, "the rebuilt cache on the cluster", func() string { return matchesTopic(t, st, last) })

	// The query API reads the Cluster layout: every product as the topic
	// last had it, deleted ones 404, and the change feed from the start.
	api := freePort(t)
	start(t, "query-api", "--addr", api, "--redis-cluster", "--redis-addr", strings.Join(addrs, ","),
		"--redis-prefix", st.Prefix(), "--levels-topic", topic)
	base := "http://" + api
	var live, gone int
	for id, r := range last {
		if r.Value == nil {
			gone++
			get(t, base+"/v1/stock/"+id, http.StatusNotFound)
			continue
		}
		l, err := schemas.DecodeLevel(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		live++
		got := waitFor(t, base, id, func(product) bool { return true })
		if got.OnHand != l.OnHand || got.Position != l.Position.Value().String() {
			t.Fatalf("%s through the API on the cluster: on_hand %d at %s, topic has %d at %s", id, got.OnHand, got.Position, l.OnHand, l.Position.Value())
		}
	}
	seen := map[string]bool{}
	for cursor, pages := "", 0; pages < 100; pages++ {
		var page struct {
			Changes []struct {
				ProductID string `json:"product_id"`
			} `json:"changes"`
			NextCursor string `json:"next_cursor"`
		}
		u := base + "/v1/stock/changes?limit=200"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := json.Unmarshal(get(t, u, http.StatusOK), &page); err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Changes {
			seen[c.ProductID] = true
		}
		if len(page.Changes) == 0 {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != live+gone {
		t.Fatalf("the change feed on the cluster named %d products, want %d (%d live, %d deleted)", len(seen), live+gone, live, gone)
	}
}

// get fetches u and fails the test unless it answers want; it returns the body.
func get(t *testing.T, u string, want int) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", u, resp.StatusCode, body, want)
	}
	return body
}
