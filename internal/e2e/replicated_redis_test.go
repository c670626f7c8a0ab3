package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/testenv"
)

// TestRedisFailoverUnderLoad runs two projections of one topic on the
// replicated profile's Redis, a primary and a replica under a Sentinel,
// which the projectors and the query APIs follow (--redis-sentinel-master):
// one waits for the replica before committing a batch's offsets
// (--redis-wait-replicas 1), the other does not. Under load it SIGKILLs the
// primary; the Sentinel promotes the replica; the killed node comes back as
// the new primary's replica. Once quiet, both projections equal PostgreSQL:
// the waiting one because no batch counted as applied was lost, the other
// because its projector saw the replication id change and rebuilt its cache
// from the topic. A reader that kept reading the API through the failover
// never saw a product go back to an older position: Redis sends a write to
// its replicas in the same pass of its event loop that answers it, before
// any other client can read it, so a primary process that dies has handed
// the kernel, and so the replica, every write a reader saw. (A primary
// machine that dies takes its socket buffers with it: there a reader may
// see a position go back until the batch is retried.) The time until fresh
// again is logged.
func TestRedisFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a Redis primary under load")
	}
	rs := testenv.Replicated(t)
	t.Cleanup(func() { rs.Start(t, "redis") })
	conn := db(t, 0, 0)
	c := newLoadCatalog(t, conn)
	products, probe, wh1, wh2 := c.products, c.probe, c.wh1, c.wh2
	all := append([]string{probe}, products...)

	viaSentinel := []string{"--redis-addr", strings.Join(rs.Sentinels, ","), "--redis-sentinel-master", rs.Master}
	p := startPipelineWith(t, conn, pipelineOpts{redis: viaSentinel,
		projector: []string{"--redis-wait-replicas", "1", "--redis-wait-timeout", "500ms", "--cache-check-interval", "500ms"}})
	// The same topic, projected without waiting for the replica.
	nowait := testenv.Name(t, "nowait")
	levels := p.prefix + "stock.levels.v1"
	pj2 := start(t, "projector", append([]string{"--brokers", strings.Join(testenv.KafkaBrokers(), ","), "--topic", levels,
		"--group", nowait, "--redis-prefix", nowait + ":", "--metrics-addr", "", "--cache-check-interval", "500ms"}, viaSentinel...)...)
	api2 := freePort(t)
	qa2 := start(t, "query-api", append([]string{"--addr", api2, "--redis-prefix", nowait + ":", "--levels-topic", levels}, viaSentinel...)...)
	waitFor(t, p.api, probe, func(got product) bool { return got.OnHand == 140 })
	waitFor(t, "http://"+api2, probe, func(got product) bool { return got.OnHand == 140 })

	pool := c.pool(t)
	l := startLoad(pool, products, wh1, wh2)
	pr := &prober{pool: pool, api: p.api, product: probe, warehouse: wh1}
	l.also(func(stop <-chan struct{}) { pr.run(t, stop) })
	rd := &positionReader{api: p.api, ids: products}
	l.also(rd.run)
	time.Sleep(3 * time.Second)
	pr.report(t, "before the failover", time.Time{}, time.Now())

	killed, addr := rs.RedisPrimary(t)
	at := time.Now()
	rs.Kill(t, killed)
	testenv.Eventually(t, time.Minute, "the sentinel to promote the replica", func() string {
		if s, a := rs.RedisPrimary(t); s == killed {
			return "the primary is still " + s + " at " + a
		}
		return ""
	})
	promoted, _ := rs.RedisPrimary(t)
	t.Logf("primary %s (%s) killed; %s promoted %s later", killed, addr, promoted, time.Since(at).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	restarted := time.Now()
	rs.Start(t, killed) // back as the new primary's replica
	// Waiting for one replica, the waiting projection stands still from the
	// failover until the old primary is back as a replica.
	pr.freshSince(t, time.Now())
	t.Logf("the old primary restarted as a replica; fresh again %s after its start", time.Since(restarted).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	pr.report(t, "primary killed, replica promoted, old primary back as a replica", at, time.Now())
	t.Logf("%d writes committed under load", l.halt())

	for _, pr := range []*proc{p.producer, p.projector, p.queryAPI, pj2, qa2} {
		if err := running(pr); err != nil {
			t.Fatalf("the %s did not ride out the failover: %v", pr.name, err)
		}
	}
	testenv.Eventually(t, 2*time.Minute, "the waiting projection equal to PostgreSQL", func() string {
		return apiEqualsPG(t, p.api, conn, all)
	})
	testenv.Eventually(t, 2*time.Minute, "the projection that did not wait equal to PostgreSQL", func() string {
		return apiEqualsPG(t, "http://"+api2, conn, all)
	})
	if !p.projector.logged("nothing to repair") {
		t.Error("the waiting projector did not log the failover")
	}
	if !pj2.logged("rebuilding the cache from the topic") {
		t.Error("the projector that did not wait did not rebuild after the failover")
	}
	back, stuck := rd.regressions(t)
	t.Logf("the reader made %d reads; %d products were served older than before, %d of them still are", rd.reads, back, stuck)
	if back > 0 {
		t.Errorf("%d products went back to an older position than the API had served (%d still are)", back, stuck)
	}
}

// positionReader reads the API's products one after another, remembering
// the newest position served for each, and every time one came back older.
type positionReader struct {
	api   string
	ids   []string
	mu    sync.Mutex
	reads int
	seen  map[string]position.Position // newest served
	back  map[string]bool              // went back at least once
}

func (r *positionReader) run(stop <-chan struct{}) {
	r.seen, r.back = map[string]position.Position{}, map[string]bool{}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := r.ids[i%len(r.ids)]
		pos, ok := apiPosition(r.api, id)
		if !ok {
			continue
		}
		r.mu.Lock()
		r.reads++
		if prev, had := r.seen[id]; had && prev.After(pos) {
			r.back[id] = true
		} else {
			r.seen[id] = pos
		}
		r.mu.Unlock()
	}
}

// regressions returns how many products went back at least once, and how
// many of those the API serves older than the newest seen even now.
func (r *positionReader) regressions(t *testing.T) (back, stuck int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.back {
		back++
		if pos, ok := apiPosition(r.api, id); !ok || r.seen[id].After(pos) {
			t.Logf("%s: the API serves %s, older than %s served before", id, pos, r.seen[id])
			stuck++
		}
	}
	return back, stuck
}

// apiPosition is the position the API serves for a product.
func apiPosition(api, id string) (position.Position, bool) {
	resp, err := http.Get(api + "/v1/stock/" + id)
	if err != nil {
		return position.Position{}, false
	}
	defer resp.Body.Close()
	var got product
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
		return position.Position{}, false
	}
	pos, err := position.Parse(got.Position)
	return pos, err == nil
}
