package apibench

// Measuring: running a read case with a number of workers (or at a fixed
// rate) for a while, its latency percentiles and the CPU it took.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

type result struct {
	n              int
	rate           float64
	p50, p99, p999 time.Duration
	cpu            cpuTimes
}

func (r result) perReq(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(r.n)
}

// busy is the share of the machine's CPU in use during the run, by anyone.
func (r result) busy() float64 {
	if r.cpu.total <= 0 {
		return 0
	}
	return 100 * float64(r.cpu.busy) / float64(r.cpu.total)
}

func percentiles(lat [][]time.Duration, elapsed time.Duration) (result, error) {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(int(p*float64(len(all))), len(all)-1)] }
	return result{n: len(all), rate: float64(len(all)) / elapsed.Seconds(), p50: q(0.50), p99: q(0.99), p999: q(0.999)}, nil
}

// measure runs workers closed-loop clients for d (after a second of
// warm-up) and reports throughput, latency percentiles and the CPU each
// party used. profile, when set, is waited for after the run.
func measure(ctx context.Context, workers int, d time.Duration, newOp opFactory, rdb redis.UniversalClient, apiPID int, profile func() error) (result, error) {
	ops := make([]func(int) error, workers)
	for w := range ops {
		op, done, err := newOp()
		if err != nil {
			return result{}, err
		}
		defer done()
		ops[w] = op
	}
	warm, cancelWarm := context.WithTimeout(ctx, time.Second)
	_ = loop(warm, ops, nil)
	cancelWarm()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}

	r, err := withCPU(ctx, rdb, apiPID, func() (result, error) {
		runCtx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		lat := make([][]time.Duration, workers)
		start := time.Now()
		if err := loop(runCtx, ops, lat); err != nil {
			return result{}, err
		}
		return percentiles(lat, time.Since(start))
	})
	if err != nil {
		return result{}, err
	}
	if profile != nil {
		if err := profile(); err != nil {
			return result{}, err
		}
	}
	return r, nil
}

// withCPU runs run and adds to its result the CPU each party used
// meanwhile.
func withCPU(ctx context.Context, rdb redis.UniversalClient, apiPID int, run func() (result, error)) (result, error) {
	before, err := readCPU(ctx, rdb, apiPID)
	if err != nil {
		return result{}, err
	}
	r, err := run()
	if err != nil {
		return result{}, err
	}
	after, err := readCPU(ctx, rdb, apiPID)
	if err != nil {
		return result{}, err
	}
	r.cpu = after.sub(before)
	return r, nil
}

func loop(ctx context.Context, ops []func(int) error, lat [][]time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ops))
	for w, op := range ops {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += len(ops) {
				t := time.Now()
				if err := op(i); err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the run
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

// measureAtRate offers rate requests per second for d, open loop: request
// k is due at start + k/rate whatever happened to the others, and its
// latency counts from then, so time spent queued behind a slow answer is
// counted (no coordinated omission). At most inFlight requests run at once.
func measureAtRate(ctx context.Context, inFlight int, d time.Duration, rate float64, newOp opFactory) (result, error) {
	type job struct {
		i  int
		at time.Time
	}
	// Room for every job of the run: the scheduler never waits for workers.
	jobs := make(chan job, int(rate*d.Seconds())+1)
	lat := make([][]time.Duration, inFlight)
	errs := make([]error, inFlight)
	var wg sync.WaitGroup
	for w := range inFlight {
		op, done, err := newOp()
		if err != nil {
			close(jobs)
			wg.Wait()
			return result{}, err
		}
		wg.Go(func() {
			defer done()
			for j := range jobs {
				if errs[w] != nil || ctx.Err() != nil {
					continue // drain
				}
				if err := op(j.i); err != nil {
					errs[w] = err
					continue
				}
				lat[w] = append(lat[w], time.Since(j.at))
			}
		})
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for k := 0; ; {
		now := time.Now()
		if now.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		// Release every job due by now, then sleep a little: a timer per
		// request would cost the client more than the requests.
		for ; start.Add(time.Duration(k) * interval).Before(now); k++ {
			jobs <- job{i: k, at: start.Add(time.Duration(k) * interval)}
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	return percentiles(lat, time.Since(start))
}
