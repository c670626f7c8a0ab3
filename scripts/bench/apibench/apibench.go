// Package apibench is `bench api` (make bench-api): it loads the query API
// on this machine and prints req/s and latency percentiles per read, beside
// the same reads done straight against Redis through internal/stockstore
// (the floor no API can beat), the ratio, and what each request cost in CPU
// to the API, to Redis and to the load client. It loads 10,000 products of
// 20 warehouses under a unique key prefix of the local Redis, runs the
// query-api program as its own process over them, and deletes the keys
// afterwards. It must never read or write keys outside its prefix.
package apibench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/scripts/bench/redisprefix"
	"github.com/stockpipe/stock/scripts/bench/report"
)

type options struct {
	redisAddr   string
	products    int
	warehouses  int
	duration    time.Duration
	workers     int
	apiArgs     string
	apiBin      string
	profileDir  string
	latencyLoad float64
	rates       map[string]float64
	only        string
}

// Run parses the flags of `bench api` (Go flag syntax, -flag or --flag, as
// since the benchmark's first figures) and runs it.
func Run(ctx context.Context, args []string, out, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.redisAddr, "redis-addr", envOr("STOCK_REDIS_ADDR", "127.0.0.1:6379"), "Redis address")
	fs.IntVar(&o.products, "products", 10000, "products to load")
	fs.IntVar(&o.warehouses, "warehouses", 20, "warehouses per product")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement")
	fs.IntVar(&o.workers, "workers", 8, "concurrent clients of the throughput runs")
	fs.StringVar(&o.apiArgs, "api-args", "", "extra flags for the query-api program, space-separated (e.g. '--access-log all')")
	fs.StringVar(&o.apiBin, "api-bin", "", "run this query-api binary instead of building the checkout's (to compare builds on one harness)")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of the API per read into this folder (enables the API's --pprof-addr)")
	fs.Float64Var(&o.latencyLoad, "latency-load", 0.5, "offered load of the fixed-rate latency runs, as a fraction of the API's measured throughput (0: skip them)")
	fs.StringVar(&o.only, "only", "", "run only the reads whose name contains this")
	fs.Func("rates", "fixed rates of the latency runs per read, overriding -latency-load, e.g. single-GET=15000,bulk-1000=80", func(v string) error {
		o.rates = map[string]float64{}
		for kv := range strings.SplitSeq(v, ",") {
			k, rate, ok := strings.Cut(kv, "=")
			f, err := strconv.ParseFloat(rate, 64)
			if !ok || err != nil || f < 0 {
				return fmt.Errorf("%q is not read=rate", kv)
			}
			o.rates[k] = f
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// The bulk of 1000 reads 1000 distinct ids from a window that slides
	// over the rest: with exactly 1000 there is nothing to slide over.
	if o.products <= 1000 {
		return errors.New("more than 1000 products (the bulk of 1000 reads distinct ids)")
	}
	if o.latencyLoad < 0 || o.latencyLoad > 1 {
		return errors.New("latency-load is a fraction from 0 to 1")
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
		// Whatever happened, and after a Ctrl-C too.
		n, err := redisprefix.Delete(context.WithoutCancel(ctx), rdb, prefix)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
		fmt.Fprintf(out, "deleted %d keys under %s\n", n, prefix)
	}()

	ids, err := load(ctx, st, o, out)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "bench-api-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	api, err := startAPI(ctx, dir, o.apiBin, o.redisAddr, prefix, o.profileDir != "", strings.Fields(o.apiArgs))
	if err != nil {
		return err
	}
	defer func() {
		if err := api.Stop(15 * time.Second); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}()

	cases := readCases(ctx, st, ids, api.addr)
	fmt.Fprintf(out, "\n%d products x %d warehouses; API: the query-api program as its own process; load average %s\n",
		len(ids), o.warehouses, report.LoadAvg())
	fmt.Fprintf(out, "throughput: %d concurrent keep-alive clients, %s per run; CPU per request: API process, Redis server, this process (the load client)\n\n",
		o.workers, o.duration)
	fmt.Fprintf(out, "%-18s %-5s %9s %8s %8s %8s %7s  %8s %8s %8s %6s\n",
		"read", "via", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "API/raw", "API µs", "Redis µs", "client µs", "busy")
	type rates struct {
		name     string
		api, raw float64
	}
	var measured []rates
	logBefore := api.logBytes()
	for _, c := range cases {
		if o.only != "" && !strings.Contains(c.name, o.only) {
			continue
		}
		var profile func() error
		if o.profileDir != "" {
			profile = fetchProfile(api.pprofAddr, o.duration, filepath.Join(o.profileDir, slug(c.name)+".pprof"))
		}
		a, err := measure(ctx, o.workers, o.duration, c.api, rdb, api.PID(), profile)
		if err != nil {
			return fmt.Errorf("%s via API: %w", c.name, err)
		}
		r, err := measure(ctx, o.workers, o.duration, c.raw, rdb, 0, nil)
		if err != nil {
			return fmt.Errorf("%s via Redis: %w", c.name, err)
		}
		fmt.Fprintf(out, "%-18s %-5s %9.0f %8.3f %8.3f %8.3f %7s  %8.1f %8.1f %8.1f %5.0f%%\n", c.name, "API",
			a.rate, ms(a.p50), ms(a.p99), ms(a.p999), "", a.perReq(a.cpu.api), a.perReq(a.cpu.redis), a.perReq(a.cpu.client), a.busy())
		fmt.Fprintf(out, "%-18s %-5s %9.0f %8.3f %8.3f %8.3f %6.0f%%  %8s %8.1f %8.1f %5.0f%%\n", "", "Redis",
			r.rate, ms(r.p50), ms(r.p99), ms(r.p999), 100*a.rate/r.rate, "", r.perReq(r.cpu.redis), r.perReq(r.cpu.client), r.busy())
		measured = append(measured, rates{c.name, a.rate, r.rate})
	}
	fmt.Fprintf(out, "\nAPI log written during the throughput runs: %d bytes\n", api.logBytes()-logBefore)

	if o.latencyLoad > 0 || len(o.rates) > 0 {
		fmt.Fprintf(out, "\nlatency at a fixed offered load (%.0f%% of the API's throughput above unless -rates says, the same rate for both; open loop, measured from the scheduled send time, up to %d in flight)\n\n",
			100*o.latencyLoad, 4*o.workers)
		fmt.Fprintf(out, "%-18s %-5s %9s %9s %8s %8s %8s  %8s %8s %8s %6s\n",
			"read", "via", "offered/s", "done/s", "p50 ms", "p99 ms", "p99.9 ms", "API µs", "Redis µs", "client µs", "busy")
		for _, m := range measured {
			c := cases[slices.IndexFunc(cases, func(c readCase) bool { return c.name == m.name })]
			rate, ok := o.rates[slug(c.name)]
			if !ok {
				rate = o.latencyLoad * m.api
			}
			if rate <= 0 {
				continue
			}
			for _, via := range []struct {
				name string
				op   opFactory
				pid  int
			}{{"API", c.api, api.PID()}, {"Redis", c.raw, 0}} {
				l, err := withCPU(ctx, rdb, via.pid, func() (result, error) {
					return measureAtRate(ctx, 4*o.workers, o.duration, rate, via.op)
				})
				if err != nil {
					return fmt.Errorf("%s via %s at %.0f/s: %w", c.name, via.name, rate, err)
				}
				name, apiCPU := c.name, fmt.Sprintf("%8.1f", l.perReq(l.cpu.api))
				if via.name != "API" {
					name, apiCPU = "", ""
				}
				fmt.Fprintf(out, "%-18s %-5s %9.0f %9.0f %8.3f %8.3f %8.3f  %8s %8.1f %8.1f %5.0f%%\n", name, via.name, rate, l.rate,
					ms(l.p50), ms(l.p99), ms(l.p999), apiCPU, l.perReq(l.cpu.redis), l.perReq(l.cpu.client), l.busy())
			}
		}
	}
	fmt.Fprintf(out, "\nload average at the end %s\n", report.LoadAvg())
	return nil
}

// opFactory gives each worker its own op (its own connection): op(i) runs
// the i-th request.
type opFactory func() (op func(i int) error, done func(), err error)

type readCase struct {
	name     string
	api, raw opFactory
}

func readCases(ctx context.Context, st *stockstore.Store, ids []string, addr string) []readCase {
	// Requests are built once: building them in the loop would charge the
	// load client, not the API.
	single := make([][]byte, len(ids))
	for i, id := range ids {
		single[i] = getRequest(addr, "/v1/stock/"+id)
	}
	const ring = 64 // distinct bulk requests per size
	bulk := func(n int) (reqs [][]byte, slices [][]string) {
		for i := range ring {
			start := (i * 7919) % (len(ids) - n)
			part := ids[start : start+n]
			slices = append(slices, part)
			reqs = append(reqs, postRequest(addr, "/v1/stock/bulk", `{"product_ids":["`+strings.Join(part, `","`)+`"]}`))
		}
		return reqs, slices
	}
	bulk100, ids100 := bulk(100)
	bulk1000, ids1000 := bulk(1000)
	changes := getRequest(addr, "/v1/stock/changes?limit=100")

	viaAPI := func(req func(i int) []byte) opFactory {
		return func() (func(int) error, func(), error) {
			c, err := dialHTTP(addr)
			if err != nil {
				return nil, nil, err
			}
			return func(i int) error { _, err := c.do(req(i)); return err }, func() { c.Close() }, nil
		}
	}
	direct := func(op func(i int) error) opFactory {
		return func() (func(int) error, func(), error) { return op, func() {}, nil }
	}
	return []readCase{
		{name: "single GET",
			api: viaAPI(func(i int) []byte { return single[(i*7919)%len(single)] }),
			raw: direct(func(i int) error { _, err := st.GetJSON(ctx, ids[(i*7919)%len(ids)]); return err })},
		{name: "bulk 100",
			api: viaAPI(func(i int) []byte { return bulk100[i%ring] }),
			raw: direct(func(i int) error { _, err := st.GetManyJSON(ctx, ids100[i%ring]); return err })},
		{name: "bulk 1000",
			api: viaAPI(func(i int) []byte { return bulk1000[i%ring] }),
			raw: direct(func(i int) error { _, err := st.GetManyJSON(ctx, ids1000[i%ring]); return err })},
		{name: "changes page 100",
			api: viaAPI(func(int) []byte { return changes }),
			// The API's own reads: the change index page, then the documents.
			raw: direct(func(int) error {
				chs, _, err := st.Changes(ctx, "", 100)
				if err != nil {
					return err
				}
				live := make([]string, 0, len(chs))
				for _, c := range chs {
					live = append(live, c.ProductID)
				}
				_, err = st.GetManyJSON(ctx, live)
				return err
			})},
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func slug(s string) string { return strings.ReplaceAll(s, " ", "-") }

// load applies o.products snapshots of o.warehouses rows each, in batches,
// and returns the ids. Every 10th row is low, so low-stock sets fill too.
func load(ctx context.Context, st *stockstore.Store, o options, out io.Writer) ([]string, error) {
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
	fmt.Fprintf(out, "loaded %d products x %d warehouses in %s\n", o.products, o.warehouses, time.Since(start).Round(time.Millisecond))
	return ids, nil
}

// fetchProfile starts fetching a CPU profile of the API covering most of a
// run and returns a function that waits for it and writes it to path.
func fetchProfile(pprofAddr string, d time.Duration, path string) func() error {
	secs := max(int((d-time.Second)/time.Second), 1)
	done := make(chan error, 1)
	go func() {
		// Start after the warm-up second of measure.
		time.Sleep(time.Second)
		res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs))
		if err != nil {
			done <- fmt.Errorf("fetching the API's CPU profile: %w", err)
			return
		}
		defer res.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, res.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() error { return <-done }
}
