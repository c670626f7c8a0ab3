package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/schemas"
)

// TestBrokerLossUnderLoad runs the whole pipeline on the replicated
// profile's three-node Kafka cluster (topics at replication factor 3,
// min.insync.replicas 2, chosen by the producer) under a steady load of
// one-row and two-row transactions, and in turn:
//
//  1. SIGKILLs the broker that leads the most partitions of the levels topic,
//     and starts it again later;
//  2. SIGKILLs the transaction coordinator of the producer's transactional
//     id, and starts it again later;
//  3. restarts the three brokers one at a time, each once the cluster is
//     fully replicated again, as an operator's rolling restart does.
//
// After each loss it measures (and logs, without asserting) how long until a
// write made after the loss is served by the API. At the end, once quiet:
// every row's change records are there exactly once with consecutive
// versions ending at PostgreSQL's, the last levels record of every product
// equals PostgreSQL, the API equals PostgreSQL, and neither the producer nor
// the projector stopped (nobody restarted them).
func TestBrokerLossUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts Kafka brokers for a few minutes")
	}
	kc := testenv.Replicated(t)
	// Whatever happens to the test, the cluster is whole for the next one.
	t.Cleanup(func() {
		kc.Start(t, "kafka")
	})
	conn := db(t, 0, 0)
	c := newLoadCatalog(t, conn)
	products, probe, wh1, wh2 := c.products, c.probe, c.wh1, c.wh2

	p := startPipelineWith(t, conn, pipelineOpts{brokers: kc.Brokers})
	waitFor(t, p.api, probe, func(got product) bool { return got.OnHand == 140 })
	adm := replicatedAdmin(t, kc.Brokers)
	levels := p.prefix + schemas.TopicLevels
	checkReplication(t, adm, levels)

	pool := c.pool(t)
	l := startLoad(pool, products, wh1, wh2)
	pr := &prober{pool: pool, api: p.api, product: probe, warehouse: wh1}
	l.also(func(stop <-chan struct{}) { pr.run(t, stop) })
	time.Sleep(3 * time.Second)
	pr.report(t, "before any loss", time.Time{}, time.Now())

	leader := mostLeader(t, adm, levels)
	at := time.Now()
	kc.Kill(t, testenv.KafkaNode(leader))
	time.Sleep(3 * time.Second)
	kc.Start(t, testenv.KafkaNode(leader))
	waitReplicated(t, adm)
	pr.freshSince(t, time.Now())
	pr.report(t, fmt.Sprintf("broker %d, leader of the most partitions of %s, killed and started again", leader, levels), at, time.Now())

	coord := txnCoordinator(t, adm, "stock-producer-"+p.slot+"-"+p.prefix+cdc.DefaultCheckpointTopic)
	at = time.Now()
	kc.Kill(t, testenv.KafkaNode(coord))
	time.Sleep(3 * time.Second)
	kc.Start(t, testenv.KafkaNode(coord))
	waitReplicated(t, adm)
	pr.freshSince(t, time.Now())
	pr.report(t, fmt.Sprintf("broker %d, the producer's transaction coordinator, killed and started again", coord), at, time.Now())

	at = time.Now()
	for id := int32(1); id <= int32(len(kc.Brokers)); id++ {
		kc.Stop(t, testenv.KafkaNode(id))
		kc.Start(t, testenv.KafkaNode(id))
		waitReplicated(t, adm)
	}
	pr.freshSince(t, time.Now())
	pr.report(t, "rolling restart of the three brokers", at, time.Now())
	time.Sleep(2 * time.Second)
	t.Logf("%d writes committed under load", l.halt())

	for _, pr := range []*proc{p.producer, p.projector, p.queryAPI} {
		if err := running(pr); err != nil {
			t.Fatalf("the %s did not ride out the broker losses: %v", pr.name, err)
		}
	}
	all := append([]string{probe}, products...)
	want := pgRows(t, conn, all)
	testenv.Eventually(t, 2*time.Minute, "the levels topic equal to PostgreSQL", func() string {
		return compareLevels(t, readAllOn(t, kc.Brokers, levels), want)
	})
	testenv.Eventually(t, time.Minute, "the API equal to PostgreSQL", func() string {
		return apiEqualsPG(t, p.api, conn, all)
	})
	checkChanges(t, readAllOn(t, kc.Brokers, p.prefix+schemas.TopicChanges), want)
}

// loadCatalog is what the replication tests load: products in two
// warehouses of their own, and a probe product only the prober writes.
type loadCatalog struct {
	conn     *pgx.Conn
	products []string
	probe    string
	wh1, wh2 string
}

func newLoadCatalog(t *testing.T, conn *pgx.Conn) loadCatalog {
	t.Helper()
	c := loadCatalog{conn: conn, wh1: ident(t, "WHA"), wh2: ident(t, "WHB"), probe: ident(t, "PROBE")}
	c.products = make([]string, 30)
	for i := range c.products {
		c.products[i] = ident(t, "SKU")
		newProduct(t, conn, c.products[i], c.wh1, c.wh2)
	}
	newProduct(t, conn, c.probe, c.wh1, c.wh2)
	return c
}

// pool is a connection pool to the catalog's database, for the writers.
func (c loadCatalog) pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), c.conn.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// writeLoad is a steady write load from two writers: adjusts of one row, and
// transfers that change two rows in one transaction.
type writeLoad struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	writes atomic.Int64 // committed
}

func startLoad(pool *pgxpool.Pool, products []string, wh1, wh2 string) *writeLoad {
	l := &writeLoad{stop: make(chan struct{})}
	for w := range 2 {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		l.also(func(stop <-chan struct{}) { l.write(pool, rng, products, wh1, wh2, stop) })
	}
	return l
}

// also runs fn beside the writers, until halt.
func (l *writeLoad) also(fn func(stop <-chan struct{})) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn(l.stop)
	}()
}

// halt stops the writers and returns how many writes they committed.
func (l *writeLoad) halt() int64 {
	close(l.stop)
	l.wg.Wait()
	return l.writes.Load()
}

func (l *writeLoad) write(pool *pgxpool.Pool, rng *rand.Rand, products []string, wh1, wh2 string, stop <-chan struct{}) {
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return
		default:
		}
		p := products[rng.IntN(len(products))]
		var err error
		if rng.IntN(2) == 0 {
			from, to := wh1, wh2
			if rng.IntN(2) == 0 {
				from, to = to, from
			}
			_, err = pool.Exec(ctx, `SELECT stock_transfer($1, $2, $3, 1, 'e2e-load')`, p, from, to)
		} else {
			_, err = pool.Exec(ctx, `SELECT stock_adjust($1, $2, $3, 'e2e load', 'e2e-load')`, p, wh1, 1+rng.IntN(3))
		}
		if err == nil {
			l.writes.Add(1)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// prober measures freshness through the losses: one write at a time to
// its product, each timed from before its commit until the API serves it.
type prober struct {
	pool               *pgxpool.Pool
	api                string
	product, warehouse string
	mu                 sync.Mutex
	samples            []probeSample
}

type probeSample struct {
	at      time.Time // when the write started
	latency time.Duration
}

func (pr *prober) run(t *testing.T, stop <-chan struct{}) {
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return
		default:
		}
		at := time.Now()
		var want int64
		_, err := pr.pool.Exec(ctx, `SELECT stock_adjust($1, $2, 1, 'probe', 'replicated-test')`, pr.product, pr.warehouse)
		if err == nil {
			err = pr.pool.QueryRow(ctx, `SELECT sum(on_hand) FROM inventory_levels WHERE product_id = $1`, pr.product).Scan(&want)
		}
		if err != nil {
			t.Errorf("probe write: %v", err)
			return
		}
		for apiOnHand(pr.api, pr.product) != want {
			if time.Since(at) > 2*time.Minute {
				t.Errorf("a probe write made at %s never reached the API", at.Format(time.TimeOnly))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		pr.mu.Lock()
		pr.samples = append(pr.samples, probeSample{at, time.Since(at)})
		pr.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// freshSince waits until a probe write made after since reached the API.
func (pr *prober) freshSince(t *testing.T, since time.Time) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, "a probe write to reach the API", func() string {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		if n := len(pr.samples); n > 0 && pr.samples[n-1].at.After(since) {
			return ""
		}
		return "no probe write made after " + since.Format(time.TimeOnly) + " reached it yet"
	})
}

// report logs the probes whose wait overlapped [from, to]: how many, their
// median and the worst, which is how long the pipeline was not fresh.
func (pr *prober) report(t *testing.T, what string, from, to time.Time) {
	pr.mu.Lock()
	var lat []time.Duration
	for _, s := range pr.samples {
		if !s.at.Add(s.latency).Before(from) && !s.at.After(to) {
			lat = append(lat, s.latency)
		}
	}
	pr.mu.Unlock()
	if len(lat) == 0 {
		t.Logf("%s: no probe finished", what)
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%s: %d probes, commit-to-API median %s, worst %s (the time until fresh again)",
		what, len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}

// apiOnHand is the product's on_hand as the API serves it (-1 when it does not).
func apiOnHand(api, id string) int64 {
	resp, err := http.Get(api + "/v1/stock/" + id)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var got product
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
		return -1
	}
	return got.OnHand
}

func replicatedAdmin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// checkReplication fails unless the producer created topic with three
// replicas and min.insync.replicas 2, the safe defaults on a cluster.
func checkReplication(t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range td[topic].Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("%s/%d has replicas %v, want 3", topic, p.Partition, p.Replicas)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range c.Configs {
		if kv.Key == "min.insync.replicas" && kv.MaybeValue() != "2" {
			t.Fatalf("%s has min.insync.replicas %s, want 2", topic, kv.MaybeValue())
		}
	}
}

// mostLeader is the broker leading the most partitions of topic.
func mostLeader(t *testing.T, adm *kadm.Client, topic string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	for _, p := range td[topic].Partitions {
		count[p.Leader]++
	}
	ids := make([]int32, 0, len(count))
	for id := range count {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return count[ids[i]] > count[ids[j]] || count[ids[i]] == count[ids[j]] && ids[i] < ids[j]
	})
	return ids[0]
}

// txnCoordinator is the coordinator of the transactional id (the
// producer's default: from its slot and checkpoint topic).
func txnCoordinator(t *testing.T, adm *kadm.Client, id string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := adm.FindTxnCoordinators(ctx, id)[id]
	if r.Err != nil {
		t.Fatalf("finding the coordinator of %s: %v", id, r.Err)
	}
	return r.NodeID
}

// waitReplicated waits until every partition of every topic, the internal
// ones included, has all its replicas in sync: only then may the next broker
// go without taking a partition under min.insync.replicas.
func waitReplicated(t *testing.T, adm *kadm.Client) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, "every partition fully replicated", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		td, err := adm.ListTopicsWithInternal(ctx)
		if err != nil {
			return err.Error()
		}
		var under []string
		td.EachPartition(func(p kadm.PartitionDetail) {
			if p.Err != nil || len(p.ISR) < len(p.Replicas) {
				under = append(under, fmt.Sprintf("%s/%d isr %v of %v", p.Topic, p.Partition, p.ISR, p.Replicas))
			}
		})
		if len(under) > 0 {
			return fmt.Sprintf("%d under-replicated, e.g. %s", len(under), strings.Join(under[:min(3, len(under))], ", "))
		}
		return ""
	})
}
