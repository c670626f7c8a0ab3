package producerbench

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/proc"
)

type bench struct {
	c       config
	out     io.Writer
	name    string
	pool    *pgxpool.Pool
	changes atomic.Int64
	// products and warehouses the writers draw from: the seeded catalog.
	products, warehouses int
	// stateless runs a producer from before the state store, which has no
	// --state-dir (bench sizing compares the two designs).
	stateless bool
	// logWait bounds the wait for a log line (0: 5 minutes); a snapshot of
	// 100M rows takes more.
	logWait time.Duration
}

func newBench(ctx context.Context, c config, out io.Writer) (*bench, error) {
	var b [4]byte
	_, _ = crand.Read(b[:])
	pool, err := pgxpool.New(ctx, c.pgURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	bn := &bench{c: c, out: out, name: "bench_" + hex.EncodeToString(b[:]), pool: pool}
	// The seeder's catalog is dense (SKU-000001.., WH-01..), so the counts
	// are the ranges the writers draw from.
	var seeded bool
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM warehouses),
		EXISTS (SELECT 1 FROM inventory_levels)`).Scan(&bn.products, &bn.warehouses, &seeded)
	if err != nil || !seeded {
		pool.Close()
		return nil, fmt.Errorf("inventory_levels is empty or missing (seed it first): %v", err)
	}
	return bn, nil
}

// stateDir is the producer's state store: one per run, kept across the
// producer's restarts within it.
func (b *bench) stateDir() string { return filepath.Join(os.TempDir(), b.name+"-state") }

// close drops what the run created: slot, publication, topics and the
// producer's state store.
func (b *bench) close() {
	defer func() { _ = os.RemoveAll(b.stateDir()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		var left bool
		_, _ = b.pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, b.name)
		_ = b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, b.name).Scan(&left)
		if !left {
			// And its entry in the producer's slot ledger.
			_, _ = b.pool.Exec(ctx, `DELETE FROM stock_producer_slots WHERE slot_name = $1`, b.name)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, _ = b.pool.Exec(ctx, `DROP PUBLICATION IF EXISTS `+b.name)
	b.pool.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(b.c.brokers, ",")...))
	if err != nil {
		return
	}
	defer cl.Close()
	p := b.name + "."
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, p+"stock.levels.v1", p+"stock.changes.v1", p+"stock.alerts.v1", p+"stock.producer.checkpoints")
}

// producer is a running producer process and its JSON log.
type producer struct {
	*proc.Proc
	log  string
	wait time.Duration
}

// stopTimeout bounds a producer's shutdown: it is stopped only once the
// slot confirmed everything, so it has nothing left to drain.
const stopTimeout = time.Minute

func (b *bench) startProducer(ctx context.Context) (*producer, error) {
	name := fmt.Sprintf("%s-%d", b.name, time.Now().UnixNano())
	args := []string{"--postgres-url", b.c.pgURL, "--brokers", b.c.brokers,
		"--slot", b.name, "--publication", b.name, "--topic-prefix", b.name + ".", "--metrics-addr", ""}
	if !b.stateless {
		args = append(args, "--state-dir", b.stateDir())
	}
	p, err := proc.Start(name, os.TempDir(), b.c.producerBin, args...)
	if err != nil {
		return nil, err
	}
	wait := b.logWait
	if wait == 0 {
		wait = 5 * time.Minute
	}
	return &producer{Proc: p, log: filepath.Join(os.TempDir(), name+".log"), wait: wait}, nil
}

func (p *producer) stop() error {
	err := p.Stop(stopTimeout)
	_, exitErr := p.Exited()
	if err := errors.Join(err, exitErr); err != nil {
		return fmt.Errorf("producer exited: %w", err)
	}
	os.Remove(p.log)
	return nil
}

// cpuSeconds reads the process's own user+system time.
func (p *producer) cpuSeconds() (float64, error) {
	cpu, err := p.CPU()
	return cpu.Seconds(), err
}

// logLine waits for a log message and returns its fields.
func (p *producer) logLine(ctx context.Context, msg string) (map[string]any, error) {
	deadline := time.Now().Add(p.wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if done, _ := p.Exited(); done {
			return nil, fmt.Errorf("producer exited; log %s", p.log)
		}
		f, err := os.Open(p.log)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
					f.Close()
					return m, nil
				}
			}
			f.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("producer never logged %q (log %s)", msg, p.log)
}

func logTime(m map[string]any) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
	return t
}

// snapshotFigures returns rows and seconds from slot creation to the
// snapshot's last Kafka commit, from the producer's own log.
func (p *producer) snapshotFigures(ctx context.Context) (int64, float64, error) {
	created, err := p.logLine(ctx, "slot created")
	if err != nil {
		return 0, 0, err
	}
	done, err := p.logLine(ctx, "snapshot written")
	if err != nil {
		return 0, 0, err
	}
	rows, _ := done["rows"].(float64)
	return int64(rows), logTime(done).Sub(logTime(created)).Seconds(), nil
}

func (p *producer) streamingStarted(ctx context.Context) (time.Time, error) {
	m, err := p.logLine(ctx, "replication started")
	if err != nil {
		return time.Time{}, err
	}
	return logTime(m), nil
}

// writeBacklog updates n rows in transactions of 1,000 rows (50 products x
// 20 warehouses) while no producer runs, and returns the WAL position after.
func (b *bench) writeBacklog(ctx context.Context, n int) (string, error) {
	var products int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&products); err != nil {
		return "", err
	}
	written := 0
	for from := 1; written < n; from += 50 {
		if from > products {
			from = 1
		}
		tag, err := b.pool.Exec(ctx, `UPDATE inventory_levels SET on_hand = on_hand + 1, version = version + 1,
			last_change_kind = 'adjust', last_change_ref = 'bench-backlog', updated_at = now()
			WHERE product_id IN (SELECT product_id FROM products ORDER BY product_id OFFSET $1 LIMIT 50)`, from-1)
		if err != nil {
			return "", fmt.Errorf("writing backlog: %w", err)
		}
		written += int(tag.RowsAffected())
	}
	var lsn string
	err := b.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn)
	return lsn, err
}

// waitConfirmed waits until the slot confirmed everything up to lsn.
func (b *bench) waitConfirmed(ctx context.Context, lsn string) (time.Time, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var ok bool
		err := b.pool.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, b.name, lsn).Scan(&ok)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			return time.Now(), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("slot never confirmed %s", lsn)
}

// settle vacuums the source table, so that the dead row versions of the bulk
// phases are not reclaimed by autovacuum while latency is measured.
func (b *bench) settle(ctx context.Context) error {
	t0 := time.Now()
	if _, err := b.pool.Exec(ctx, `VACUUM (ANALYZE) inventory_levels`); err != nil {
		return fmt.Errorf("vacuuming inventory_levels before the latency phases: %w", err)
	}
	fmt.Fprintf(b.out, "  (vacuumed inventory_levels in %.1f s before the latency phases)\n", time.Since(t0).Seconds())
	return nil
}

// latency is what one phase measured.
type latency struct {
	Rate                     float64 `json:"changes_per_second"`
	N                        int     `json:"samples"`
	P50, P95, P99, P999, Max float64 // milliseconds
}

// latencyPhase writes single-row adjusts at rate (0: as fast as the writers
// go) and measures, per change record read back with read_committed, the
// time from its source commit to its arrival.
func (b *bench) latencyPhase(ctx context.Context, rate int, d time.Duration) (latency, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(b.c.brokers, ",")...),
		kgo.ConsumeTopics(b.name+".stock.changes.v1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return latency{}, err
	}
	defer cl.Close()
	// Make sure the consumer sits at the end before writes start.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	cl.PollFetches(pctx)
	pcancel()

	phaseStart := time.Now()
	var samples []float64
	var mu sync.Mutex
	cctx, ccancel := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				c, err := schemas.DecodeChange(r.Value)
				if err != nil || c.ChangeRef != "bench-lat" || c.CommitTime.Before(phaseStart) {
					return
				}
				b.changes.Add(1)
				mu.Lock()
				samples = append(samples, float64(now.Sub(c.CommitTime).Microseconds())/1000)
				mu.Unlock()
			})
		}
	}()

	var writes atomic.Int64
	wctx, wcancel := context.WithTimeout(ctx, d)
	tokens := make(chan struct{}, 1024) // pacing tokens; buffered so a slow writer does not stall the pacer
	if rate > 0 {
		go func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			start, sent := time.Now(), 0
			for {
				select {
				case <-wctx.Done():
					close(tokens)
					return
				case now := <-t.C:
					due := int(now.Sub(start).Seconds() * float64(rate))
					for ; sent < due; sent++ {
						select {
						case tokens <- struct{}{}:
						default: // writers are behind: drop, the achieved rate says so
						}
					}
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for w := 0; w < b.c.writers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
			for wctx.Err() == nil {
				if rate > 0 {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				p := inventorydb.ProductID(1 + rng.IntN(b.products))
				wh := inventorydb.WarehouseID(1 + rng.IntN(b.warehouses))
				if _, err := b.pool.Exec(wctx, `SELECT stock_adjust($1, $2, 1, 'bench', 'bench-lat')`, p, wh); err == nil {
					writes.Add(1)
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	wcancel()
	elapsed := time.Since(phaseStart)
	// Let the last records arrive.
	time.Sleep(2 * time.Second)
	ccancel()
	<-consumed

	mu.Lock()
	defer mu.Unlock()
	l := latency{Rate: float64(writes.Load()) / elapsed.Seconds(), N: len(samples)}
	if len(samples) == 0 {
		return l, fmt.Errorf("no change records read back")
	}
	slices.Sort(samples)
	q := func(p float64) float64 { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	l.P50, l.P95, l.P99, l.P999, l.Max = q(0.50), q(0.95), q(0.99), q(0.999), samples[len(samples)-1]
	return l, nil
}

// largeTx updates up to n rows in one transaction and returns the WAL
// position after its commit and the rows it changed.
func (b *bench) largeTx(ctx context.Context, n int) (string, int, error) {
	tag, err := b.pool.Exec(ctx, `UPDATE inventory_levels SET on_hand = on_hand + 1, version = version + 1,
		last_change_kind = 'adjust', last_change_ref = 'bench-large', updated_at = now()
		WHERE (product_id, warehouse_id) IN (SELECT product_id, warehouse_id FROM inventory_levels LIMIT $1)`, n)
	if err != nil {
		return "", 0, fmt.Errorf("large transaction: %w", err)
	}
	var lsn string
	err = b.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn)
	return lsn, int(tag.RowsAffected()), err
}
