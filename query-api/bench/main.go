// Command bench loads the query API on this machine and prints req/s and
// latency percentiles per read, beside the same reads done straight against
// Redis through internal/stockstore (the floor no API can beat) and the
// ratio. It loads 10,000 products of 20 warehouses under a unique key prefix
// of the local Redis and deletes them afterwards. `make bench-api` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	redisAddr  string
	products   int
	warehouses int
	duration   time.Duration
	workers    int
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.redisAddr, "redis-addr", envOr("STOCK_REDIS_ADDR", "127.0.0.1:6379"), "Redis address")
	fs.IntVar(&o.products, "products", 10000, "products to load")
	fs.IntVar(&o.warehouses, "warehouses", 20, "warehouses per product")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each case")
	fs.IntVar(&o.workers, "workers", 8, "concurrent clients")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.products < 1000 {
		return errors.New("at least 1000 products (the bulk of 1000 reads distinct ids)")
	}

	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs = []string{o.redisAddr}
	cfg.PoolSize = 4 * o.workers
	rdb := stockstore.NewClient(cfg)
	defer rdb.Close()
	prefix := fmt.Sprintf("benchapi-%d-%d:", os.Getpid(), time.Now().UnixNano())
	st, err := stockstore.New(rdb, prefix)
	if err != nil {
		return err
	}
	defer func() {
		// Delete what was loaded, whatever happened.
		n := 0
		it := rdb.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		var batch []string
		for it.Next(context.Background()) {
			batch = append(batch, it.Val())
			if len(batch) == 500 {
				n += int(rdb.Del(context.Background(), batch...).Val())
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			n += int(rdb.Del(context.Background(), batch...).Val())
		}
		fmt.Printf("deleted %d keys under %s\n", n, prefix)
	}()

	ids, err := load(ctx, st, o)
	if err != nil {
		return err
	}

	srv := &http.Server{Handler: api.NewServer(api.Deps{Store: st, Registerer: prometheus.NewRegistry()})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown below
	defer srv.Shutdown(context.Background())
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: o.workers, MaxConnsPerHost: o.workers, DisableCompression: true,
	}}

	bulkBody := func(n int, i int) string {
		start := (i * 7919) % (len(ids) - n)
		return `{"product_ids":["` + strings.Join(ids[start:start+n], `","`) + `"]}`
	}
	type pair struct {
		name    string
		api     func(i int) error
		raw     func(i int) error
		reqSize string
	}
	httpDo := func(method, url, body string) error {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, r)
		if err != nil {
			return err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("%s %s: status %d", method, url, res.StatusCode)
		}
		return err
	}
	pairs := []pair{
		{name: "single GET",
			api: func(i int) error { return httpDo("GET", base+"/v1/stock/"+ids[(i*7919)%len(ids)], "") },
			raw: func(i int) error { _, err := st.GetJSON(ctx, ids[(i*7919)%len(ids)]); return err }},
		{name: "bulk 100",
			api: func(i int) error { return httpDo("POST", base+"/v1/stock/bulk", bulkBody(100, i)) },
			raw: func(i int) error {
				start := (i * 7919) % (len(ids) - 100)
				_, _, err := st.GetManyJSON(ctx, ids[start:start+100])
				return err
			}},
		{name: "bulk 1000",
			api: func(i int) error { return httpDo("POST", base+"/v1/stock/bulk", bulkBody(1000, i)) },
			raw: func(i int) error {
				start := (i * 7919) % (len(ids) - 1000)
				_, _, err := st.GetManyJSON(ctx, ids[start:start+1000])
				return err
			}},
		{name: "changes page 100",
			api: func(int) error { return httpDo("GET", base+"/v1/stock/changes?limit=100", "") },
			// The API's own reads: the change index page, then the documents.
			raw: func(int) error {
				chs, _, err := st.Changes(ctx, "", 100)
				if err != nil {
					return err
				}
				live := make([]string, 0, len(chs))
				for _, c := range chs {
					live = append(live, c.ProductID)
				}
				_, _, err = st.GetManyJSON(ctx, live)
				return err
			}},
	}
	fmt.Printf("\n%d products x %d warehouses, %d concurrent clients, %s per case, GOMAXPROCS shared by client, API and (raw) Redis client\n\n",
		len(ids), o.warehouses, o.workers, o.duration)
	fmt.Printf("%-18s %-5s %10s %9s %9s %9s   %s\n", "read", "via", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "API/raw")
	for _, p := range pairs {
		a, err := measure(ctx, o, p.api)
		if err != nil {
			return fmt.Errorf("%s via API: %w", p.name, err)
		}
		r, err := measure(ctx, o, p.raw)
		if err != nil {
			return fmt.Errorf("%s via Redis: %w", p.name, err)
		}
		fmt.Printf("%-18s %-5s %10.0f %9.3f %9.3f %9.3f\n", p.name, "API", a.rate, ms(a.p50), ms(a.p99), ms(a.p999))
		fmt.Printf("%-18s %-5s %10.0f %9.3f %9.3f %9.3f   %.0f%%\n", "", "Redis", r.rate, ms(r.p50), ms(r.p99), ms(r.p999), 100*a.rate/r.rate)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// load applies o.products snapshots of o.warehouses rows each, in batches,
// and returns the ids. Every 10th row is low, so low-stock sets fill too.
func load(ctx context.Context, st *stockstore.Store, o options) ([]string, error) {
	start := time.Now()
	ids := make([]string, o.products)
	commit := time.Now().UTC()
	const batch = 500
	for lo := 0; lo < o.products; lo += batch {
		snaps := make([]stockstore.Snapshot, 0, batch)
		for i := lo; i < min(lo+batch, o.products); i++ {
			ids[i] = fmt.Sprintf("SKU-%06d", i)
			s := stockstore.Snapshot{ProductID: ids[i], Position: position.Position{LSN: 1 << 20, Index: uint32(i + 1)}, CommitTime: commit, Status: "IN_STOCK"}
			for w := range o.warehouses {
				onHand := int64(50 + (i+w)%200)
				status := "IN_STOCK"
				if (i+w)%10 == 0 {
					onHand, status = 3, "LOW_STOCK"
				}
				s.Warehouses = append(s.Warehouses, stockstore.Warehouse{
					WarehouseID: fmt.Sprintf("WH-%02d", w+1), OnHand: onHand, Reserved: 1, Available: onHand - 1,
					Status: status, LowStockThreshold: 10,
				})
				s.OnHand += onHand
				s.Reserved++
				s.Available += onHand - 1
			}
			snaps = append(snaps, s)
		}
		if _, err := st.Apply(ctx, snaps); err != nil {
			return nil, fmt.Errorf("loading products: %w", err)
		}
	}
	fmt.Printf("loaded %d products x %d warehouses in %s\n", o.products, o.warehouses, time.Since(start).Round(time.Millisecond))
	return ids, nil
}

type result struct {
	rate           float64
	p50, p99, p999 time.Duration
}

// measure runs op from o.workers goroutines for o.duration (after a short
// warm-up) and reports throughput and latency percentiles.
func measure(ctx context.Context, o options, op func(i int) error) (result, error) {
	warm, cancelWarm := context.WithTimeout(ctx, time.Second)
	_ = loop(warm, o.workers, op, nil)
	cancelWarm()

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	lat := make([][]time.Duration, o.workers)
	start := time.Now()
	err := loop(runCtx, o.workers, op, lat)
	elapsed := time.Since(start)
	if err != nil {
		return result{}, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(int(p*float64(len(all))), len(all)-1)] }
	return result{rate: float64(len(all)) / elapsed.Seconds(), p50: q(0.50), p99: q(0.99), p999: q(0.999)}, nil
}

func loop(ctx context.Context, workers int, op func(i int) error, lat [][]time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += workers {
				t := time.Now()
				if err := op(i); err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the case
					}
					errs[w] = err
					return
				}
				if lat != nil {
					lat[w] = append(lat[w], time.Since(t))
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
