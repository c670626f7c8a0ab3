// Package projectorbench is `bench projector` (make bench-projector): it
// measures the projector's writes against the local stack's real Kafka and
// Redis: snapshots applied per second into Redis with p50/p99 latency of one
// batch round trip, and the time of a full rebuild (replay of a compacted
// topic into a new generation up to the switch). Each figure is the median
// of --runs runs. Everything it creates (topics, keys under a unique
// prefix) is deleted at the end; it must never write outside them.
package projectorbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/rebuild"
	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/redisprefix"
)

type config struct {
	brokers, redis    string
	products, whs     int
	batch, workers    int
	runs              int
	large             bool
	skipApply, skipRb bool
}

// Run parses the flags of `bench projector` (Go flag syntax, -flag or
// --flag, as since the benchmark's first figures) and runs it.
func Run(ctx context.Context, args []string, out, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("bench projector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "Kafka brokers")
	fs.StringVar(&c.redis, "redis-addr", "127.0.0.1:6379", "Redis address")
	fs.IntVar(&c.products, "products", 10000, "products")
	fs.IntVar(&c.whs, "warehouses", 20, "warehouses per product")
	fs.IntVar(&c.batch, "batch", 1000, "snapshots per Redis round trip")
	fs.IntVar(&c.workers, "workers", 4, "round trips in flight")
	fs.IntVar(&c.runs, "runs", 3, "runs per figure (the median is printed)")
	fs.BoolVar(&c.large, "large", false, "also rebuild 100,000 products x 100 warehouses")
	fs.BoolVar(&c.skipApply, "skip-apply", false, "skip the apply benchmark")
	fs.BoolVar(&c.skipRb, "skip-rebuild", false, "skip the rebuild benchmark")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rc := stockstore.DefaultClientConfig()
	rc.Addrs = []string{c.redis}
	rc.ReadTimeout, rc.WriteTimeout = 30*time.Second, 30*time.Second
	rc.PoolSize = 4 * c.workers
	rdb := stockstore.NewClient(rc)
	defer rdb.Close()
	base := "bench_" + randomHex() + ":"
	defer redisprefix.Delete(context.WithoutCancel(ctx), rdb, base)
	store, err := stockstore.New(rdb, base)
	if err != nil {
		return err
	}
	if err := store.LoadScripts(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "projector benchmark: %d products x %d warehouses, batch %d, %d in flight, median of %d runs\n",
		c.products, c.whs, c.batch, c.workers, c.runs)
	if !c.skipApply {
		if err := benchApply(ctx, c, rdb, store, out); err != nil {
			return err
		}
	}
	if !c.skipRb {
		if err := benchRebuild(ctx, c, c.products, c.whs, store, out); err != nil {
			return err
		}
		if c.large {
			if err := benchRebuild(ctx, c, 100000, 100, store, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func snapshot(id string, p position.Position, whs int, onHand int64) stockstore.Snapshot {
	s := stockstore.Snapshot{ProductID: id, Position: p, Status: "IN_STOCK", CommitTime: time.Now()}
	for w := range whs {
		st := "IN_STOCK"
		if (int(onHand)+w)%17 == 0 {
			st = "LOW_STOCK"
		}
		s.Warehouses = append(s.Warehouses, stockstore.Warehouse{
			WarehouseID: fmt.Sprintf("WH-%03d", w), OnHand: onHand, Reserved: 3, Available: onHand - 3,
			Status: st, LowStockThreshold: 10,
		})
		s.OnHand += onHand
		s.Reserved += 3
		s.Available += onHand - 3
	}
	return s
}

// benchApply applies rounds of every product's snapshot through Store.Apply
// as the partition workers do, several batches in flight.
func benchApply(ctx context.Context, c config, rdb redis.UniversalClient, base *stockstore.Store, out io.Writer) error {
	var rates []float64
	var p50s, p99s []time.Duration
	for r := range c.runs {
		// A rebuild session that never switches is a scratch generation:
		// Close deletes it.
		rb, _, err := base.BeginRebuild(ctx, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		st := rb.Store()
		// Build every batch first: the figure is Redis and the client, not
		// the benchmark's own allocations.
		const rounds = 3
		var batches [][]stockstore.Snapshot
		for round := 1; round <= rounds; round++ {
			all := make([]stockstore.Snapshot, c.products)
			for i := range all {
				all[i] = snapshot(fmt.Sprintf("SKU-%06d", i), position.Position{LSN: uint64(round), Index: uint32(i + 1)}, c.whs, int64(round*10+i%50))
			}
			batches = append(batches, slices.Collect(slices.Chunk(all, c.batch))...)
		}
		work := make(chan []stockstore.Snapshot)
		var mu sync.Mutex
		var lat []time.Duration
		var firstErr error
		var wg sync.WaitGroup
		start := time.Now()
		for range c.workers {
			wg.Go(func() {
				for b := range work {
					t0 := time.Now()
					_, err := st.Apply(ctx, b)
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		for _, b := range batches {
			work <- b
		}
		close(work)
		wg.Wait()
		elapsed := time.Since(start)
		if firstErr != nil {
			rb.Close(ctx)
			return firstErr
		}
		slices.Sort(lat)
		rate := float64(rounds*c.products) / elapsed.Seconds()
		rates = append(rates, rate)
		p50s = append(p50s, lat[len(lat)/2])
		p99s = append(p99s, lat[min(len(lat)-1, len(lat)*99/100)])
		fmt.Fprintf(out, "  apply run %d: %.0f snapshots/s, batch p50 %s p99 %s\n", r+1, rate,
			lat[len(lat)/2].Round(time.Microsecond), lat[min(len(lat)-1, len(lat)*99/100)].Round(time.Microsecond))
		if r == 0 {
			if err := reportMemory(ctx, rdb, base.Prefix(), c, out); err != nil {
				rb.Close(ctx)
				return err
			}
		}
		rb.Close(ctx)
	}
	fmt.Fprintf(out, "APPLY  %.0f snapshots/s (%d warehouses each), batch of %d: p50 %s, p99 %s; per snapshot p50 %s\n",
		median(rates), c.whs, c.batch, median(p50s).Round(time.Microsecond), median(p99s).Round(time.Microsecond),
		(median(p50s) / time.Duration(c.batch)).Round(time.Microsecond/10))
	return nil
}

// benchRebuild fills a compacted topic with one snapshot per product, then
// times rebuild.Run up to the switch of generations.
func benchRebuild(ctx context.Context, c config, products, whs int, store *stockstore.Store, out io.Writer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.brokers, ",")...),
		kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := "bench_levels_" + randomHex()
	if _, err := adm.CreateTopic(ctx, 6, 1, map[string]*string{"cleanup.policy": ptr("compact"), "max.message.bytes": ptr("16777216")}, topic); err != nil {
		return fmt.Errorf("creating topic: %w", err)
	}
	defer adm.DeleteTopic(context.WithoutCancel(ctx), topic)
	t0 := time.Now()
	var codec schemas.Codec
	var valueBytes int // the levels records' values, for sizing the topic
	var perr error
	var pmu sync.Mutex
	for i := range products {
		s := snapshot(fmt.Sprintf("SKU-%06d", i), position.Position{LSN: 1, Index: uint32(i + 1)}, whs, int64(i%50))
		v, err := codec.EncodeLevel(toLevel(&s))
		if err != nil {
			return err
		}
		valueBytes += len(v)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(s.ProductID), Value: v, Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderID, Value: []byte(s.Position.String() + "/" + s.ProductID)},
			{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "bench")}}},
			func(_ *kgo.Record, err error) {
				if err != nil {
					pmu.Lock()
					perr = errors.Join(perr, err)
					pmu.Unlock()
				}
			})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("producing: %w", perr)
	}
	fmt.Fprintf(out, "  filled %s with %d products x %d warehouses in %s, %d bytes per levels record value\n",
		topic, products, whs, time.Since(t0).Round(time.Millisecond), valueBytes/products)

	var times []time.Duration
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for r := range c.runs {
		rc := rebuild.DefaultConfig()
		rc.Kafka.Brokers = strings.Split(c.brokers, ",")
		rc.Topic = topic
		rc.BatchSize = c.batch
		rc.Workers = c.workers
		rc.RetireDelay = stockstore.RetireDelay
		st, err := rebuild.Run(ctx, rc, store, log, prometheus.NewRegistry())
		if err != nil {
			return err
		}
		times = append(times, st.Switched)
		fmt.Fprintf(out, "  rebuild run %d: %d records, switched after %s (%.0f records/s), old generation deleted after %s\n",
			r+1, st.Records, st.Switched.Round(time.Millisecond), float64(st.Records)/st.Switched.Seconds(), st.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(out, "REBUILD %d products x %d warehouses: %s to the switch (median)\n", products, whs, median(times).Round(time.Millisecond))
	return nil
}

func toLevel(s *stockstore.Snapshot) *schemas.StockLevel {
	lv := &schemas.StockLevel{ProductID: s.ProductID, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available,
		Status: s.Status, Position: schemas.PositionOf(s.Position), CommitTime: s.CommitTime}
	for _, w := range s.Warehouses {
		lv.Warehouses = append(lv.Warehouses, schemas.WarehouseStock{WarehouseID: w.WarehouseID, OnHand: int32(w.OnHand),
			Reserved: int32(w.Reserved), Available: int32(w.Available), Status: w.Status,
			LowStockThreshold: int32(w.LowStockThreshold), UpdatedAt: s.CommitTime})
	}
	return lv
}

func median[T float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ptr[T any](v T) *T { return &v }

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// reportMemory prints what the applied snapshots hold in Redis, per product
// and by kind of key: the figure Redis is sized by (docs/deployment.md).
// Every key under the benchmark's prefix is this run's generation.
func reportMemory(ctx context.Context, rdb redis.UniversalClient, prefix string, c config, out io.Writer) error {
	u, err := redisprefix.MemoryUsage(ctx, rdb, prefix)
	if err != nil {
		return err
	}
	kinds := slices.Sorted(maps.Keys(u.Kinds))
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.0f", k, float64(u.Kinds[k])/float64(c.products))
	}
	fmt.Fprintf(out, "MEMORY %d products x %d warehouses: %d keys, %.1f MiB, %.0f bytes per product (%s)\n",
		c.products, c.whs, u.Keys, float64(u.Bytes)/(1<<20), float64(u.Bytes)/float64(c.products), strings.Join(parts, ", "))
	return nil
}
