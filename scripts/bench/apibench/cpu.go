package apibench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/scripts/bench/proc"
)

// cpuTimes is the CPU used so far by each party of a case: the API process,
// the Redis server (all its threads; other users of the same Redis count
// too, so run the bench on a quiet Redis) and this process (the load
// client, and for the raw reads the Redis client).
type cpuTimes struct {
	api, redis, client time.Duration
	// busy and total are the machine's CPU time (all processes, all CPUs)
	// from /proc/stat: how much of the machine was in use.
	busy, total time.Duration
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{api: a.api - b.api, redis: a.redis - b.redis, client: a.client - b.client,
		busy: a.busy - b.busy, total: a.total - b.total}
}

func readCPU(ctx context.Context, rdb redis.UniversalClient, apiPID int) (cpuTimes, error) {
	var t cpuTimes
	var err error
	if apiPID > 0 {
		if t.api, err = proc.CPUOf(apiPID); err != nil {
			return t, fmt.Errorf("reading API CPU: %w", err)
		}
	}
	if t.redis, err = redisCPU(ctx, rdb); err != nil {
		return t, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return t, fmt.Errorf("reading own CPU: %w", err)
	}
	t.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	t.busy, t.total, err = machineCPU()
	return t, err
}

func redisCPU(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("reading Redis CPU: %w", err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("reading Redis CPU: %s: %w", k, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second)), nil
}

// machineCPU returns the busy and total CPU time of the machine since boot.
func machineCPU() (busy, total time.Duration, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("reading machine CPU: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("reading machine CPU: empty /proc/stat")
	}
	// cpu user nice system idle iowait irq softirq steal guest guest_nice
	fields := strings.Fields(sc.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("reading machine CPU: bad /proc/stat")
	}
	var sum, idle int64
	for i, f := range fields[1:9] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("reading machine CPU: bad /proc/stat")
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	// USER_HZ (100) ticks, as in /proc/<pid>/stat.
	const tick = 10 * time.Millisecond
	return time.Duration(sum-idle) * tick, time.Duration(sum) * tick, nil
}
