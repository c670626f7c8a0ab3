package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
)

// names are everything a run creates, unique to it, so that a benchmark
// never disturbs a running `make run` or a test.
type names struct {
	id          string
	slot        string
	publication string
	topicPrefix string
	group       string
	redisPrefix string
}

func newNames(id, suffix string) names {
	base := "bench_" + id + suffix
	return names{
		id: id, slot: base, publication: base, topicPrefix: base + ".",
		group: base, redisPrefix: base + ":",
	}
}

// infra holds the clients of the stack the benchmark itself uses.
type infra struct {
	log   *slog.Logger
	pg    *pgxpool.Pool
	kafka *kgo.Client
	adm   *kadm.Client
	rdb   *redis.Client
}

// Env is the stack's clients, shared by the scenarios of one run.
type Env struct {
	cfg Config
	log *slog.Logger
	in  *infra
}

// Open validates cfg and connects to PostgreSQL, Kafka and Redis.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Env, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := portsFree(cfg.ProducerMetrics, cfg.ProjectorMetrics, cfg.RebuildMetrics, cfg.APIAddr, cfg.DebeziumREST); err != nil {
		return nil, err
	}
	pg, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{
		URL: cfg.PGURL, MaxConns: int32(cfg.Workers + 4), ApplicationName: "bench",
	})
	if err != nil {
		return nil, err
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		pg.Close()
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: maxPollers + 8})
	if err := rdb.Ping(ctx).Err(); err != nil {
		pg.Close()
		kc.Close()
		return nil, fmt.Errorf("pinging redis: %w", err)
	}
	return &Env{cfg: cfg, log: log, in: &infra{log: log, pg: pg, kafka: kc, adm: kadm.NewClient(kc), rdb: rdb}}, nil
}

// portsFree fails when something already listens on one of addrs: the
// benchmark would otherwise scrape another run's programs.
func portsFree(addrs ...string) error {
	var errs []error
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if c, err := net.DialTimeout("tcp", a, 300*time.Millisecond); err == nil {
			c.Close()
			errs = append(errs, fmt.Errorf("%s is in use (another benchmark?): pick another address with its flag", a))
		}
	}
	return errors.Join(errs...)
}

// Close closes the clients.
func (e *Env) Close() {
	e.in.kafka.Close()
	_ = e.in.rdb.Close()
	e.in.pg.Close()
}

// rowCount is how many inventory rows the source holds.
func (in *infra) rowCount(ctx context.Context) (int64, error) {
	var n int64
	err := in.pg.QueryRow(ctx, "SELECT count(*) FROM inventory_levels").Scan(&n)
	return n, err
}

func (in *infra) createPublication(ctx context.Context, name string) error {
	_, err := in.pg.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE public.inventory_levels", pgx.Identifier{name}.Sanitize()))
	if err != nil {
		return fmt.Errorf("creating publication %s: %w", name, err)
	}
	return nil
}

// dropSlot drops a slot once no one streams from it (its owner was just
// stopped; the walsender may take a moment to go).
func (in *infra) dropSlot(ctx context.Context, slot string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := in.pg.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("dropping slot %s: %w", slot, err)
			}
			// And its entry in the producer's slot ledger (docs/producer.md).
			_, _ = in.pg.Exec(ctx, `DELETE FROM stock_producer_slots WHERE slot_name = $1`, slot)
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (in *infra) dropPublication(ctx context.Context, name string) error {
	_, err := in.pg.Exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %s", pgx.Identifier{name}.Sanitize()))
	if err != nil {
		return fmt.Errorf("dropping publication %s: %w", name, err)
	}
	return nil
}

// waitTopic waits until a topic exists with partitions.
func (in *infra) waitTopic(ctx context.Context, topic string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		td, err := in.adm.ListTopics(ctx, topic)
		if err == nil {
			if d, ok := td[topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s did not appear within %s", topic, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (in *infra) createTopic(ctx context.Context, topic string, partitions int32) error {
	resp, err := in.adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// deleteTopics deletes every topic whose name starts with prefix.
func (in *infra) deleteTopics(ctx context.Context, prefix string) error {
	all, err := in.adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	var mine []string
	for _, t := range all.Names() {
		if strings.HasPrefix(t, prefix) {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	if _, err := in.adm.DeleteTopics(ctx, mine...); err != nil {
		return fmt.Errorf("deleting topics %v: %w", mine, err)
	}
	return nil
}

func (in *infra) deleteGroups(ctx context.Context, groups ...string) {
	_, _ = in.adm.DeleteGroups(ctx, groups...)
}

// endOffsets sums and returns a topic's end offsets per partition.
func (in *infra) endOffsets(ctx context.Context, topic string) (map[int32]int64, int64, error) {
	ends, err := in.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset; sum += o.Offset })
	return out, sum, nil
}

// groupBehind returns how many records of topic the group has not
// committed, against the given end offsets. The topics are written in Kafka
// transactions, so the last offset of a partition is a commit marker: a
// consumer commits the offset after its last record, which is the marker's,
// and never past it until another record comes. One offset per partition
// is therefore not behind.
func (in *infra) groupBehind(ctx context.Context, group, topic string, ends map[int32]int64) (int64, error) {
	committed, err := in.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	var behind int64
	for p, end := range ends {
		at := int64(0)
		if o, ok := committed.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
			at = o.At
		}
		behind += max(end-at-1, 0)
	}
	return behind, nil
}

// waitGroupCaughtUp waits until the group has committed the topic's end
// offsets as they are now, and returns when it did.
func (in *infra) waitGroupCaughtUp(ctx context.Context, group, topic string, timeout time.Duration) (time.Time, error) {
	ends, _, err := in.endOffsets(ctx, topic)
	if err != nil {
		return time.Time{}, err
	}
	deadline := time.Now().Add(timeout)
	for {
		behind, err := in.groupBehind(ctx, group, topic, ends)
		if err == nil && behind == 0 {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("group %s still %d records behind on %s after %s (%v)", group, behind, topic, timeout, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
