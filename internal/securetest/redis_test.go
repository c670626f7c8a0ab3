package securetest

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/testenv"
)

// redisClient is a go-redis client of the secure Redis as user over TLS
// (tlsConf nil: without TLS), made the way the programs make theirs.
func redisClient(t *testing.T, s *testenv.SecureStack, user, pw string, tlsConf *tls.Config) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr: s.RedisAddr, Username: user, Password: pw, TLSConfig: tlsConf,
		DialTimeout: 2 * time.Second, DialerRetries: 1, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxRetries: -1,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// redisCLI runs redis-cli over TLS as user with password pw (in the
// environment, as REDISCLI_AUTH, not on the command line).
func redisCLI(t *testing.T, s *testenv.SecureStack, user, pw string, args ...string) result {
	t.Helper()
	host, port, _ := strings.Cut(s.RedisAddr, ":")
	return run(t, []string{"REDISCLI_AUTH=" + pw}, tool(t, "redis-cli"),
		append([]string{"--tls", "--cacert", s.CAFile, "-h", host, "-p", port, "--user", user}, args...)...)
}

func TestRedisRefusesBadClients(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "redis", testenv.RedisAPI)
	t.Run("go-redis", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pw   string
			tls  *tls.Config
			want []string
		}{
			{"wrong password", "not-the-password", s.TLSConfig(t, ""), []string{"WRONGPASS"}},
			// The server reads the first command as a TLS handshake and
			// hangs up without a word (its log says why): the client's
			// error is the connection's end, at once.
			{"without TLS", pw, nil, []string{"EOF|connection reset by peer"}},
			{"certificate for another host", pw, s.TLSConfig(t, "wrong.invalid"), []string{"certificate is valid for", "not wrong.invalid"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*early)
				defer cancel()
				start := time.Now()
				err := redisClient(t, s, testenv.RedisAPI, tc.pw, tc.tls).Ping(ctx).Err()
				refused(t, tc.name, err, "", time.Since(start), tc.want...)
			})
		}
	})
	t.Run("redis-cli", func(t *testing.T) {
		host, port, _ := strings.Cut(s.RedisAddr, ":")
		refusedRun(t, "no user", redisCLI(t, s, "default", "", "ping"), "NOAUTH")
		refusedRun(t, "wrong password", redisCLI(t, s, testenv.RedisAPI, "not-the-password", "ping"), "WRONGPASS")
		r := run(t, []string{"REDISCLI_AUTH=" + pw}, tool(t, "redis-cli"), "-h", host, "-p", port, "--user", testenv.RedisAPI, "ping")
		refusedRun(t, "without TLS", r, "connection reset by peer|server closed the connection")
	})
}

// snapshot is a product's stock as the projector writes it.
func snapshot(id string, onHand int64, lsn uint64) stockstore.Snapshot {
	return stockstore.Snapshot{
		ProductID: id, Position: position.Position{LSN: lsn, Index: 1},
		OnHand: onHand, Available: onHand, Status: "IN_STOCK", CommitTime: time.Now().UTC(),
		Warehouses: []stockstore.Warehouse{{WarehouseID: "WH-01", OnHand: onHand, Available: onHand, Status: "IN_STOCK", LowStockThreshold: 10}},
	}
}

// The projector's user writes the cache through internal/stockstore (the
// commands and Lua scripts it runs are the ones the ACL rules list), the
// API's user reads it through the same package and may write nothing.
func TestRedisUsers(t *testing.T) {
	s := testenv.Secure(t)
	ctx := context.Background()
	projector := redisClient(t, s, testenv.RedisProjector, s.Password(t, "redis", testenv.RedisProjector), s.TLSConfig(t, ""))
	api := redisClient(t, s, testenv.RedisAPI, s.Password(t, "redis", testenv.RedisAPI), s.TLSConfig(t, ""))
	// Under the stock: prefix the ACLs allow, with a name of the test's own.
	prefix := "stock:" + testenv.Name(t, "securetest") + ":"
	t.Cleanup(func() {
		iter := projector.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			projector.Unlink(context.Background(), iter.Val())
		}
	})
	writer, err := stockstore.New(projector, prefix)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := stockstore.New(api, prefix)
	if err != nil {
		t.Fatal(err)
	}
	const topic = "stock.levels.v1"

	t.Run("the projector writes the cache", func(t *testing.T) {
		steps := []struct {
			name string
			do   func() error
		}{
			{"load scripts", func() error { return writer.LoadScripts(ctx) }},
			{"init generation", func() error { _, _, err := writer.InitGeneration(ctx); return err }},
			{"apply", func() error {
				_, err := writer.Apply(ctx, []stockstore.Snapshot{snapshot("SKU-1", 5, 100), snapshot("SKU-2", 0, 100)},
					stockstore.Watermark{Topic: topic, Partition: 0, Offset: 7, Position: position.Position{LSN: 100, Index: 1},
						CommitTime: time.Now(), AppliedAt: time.Now()})
				return err
			}},
			{"tombstone", func() error {
				_, err := writer.Apply(ctx, []stockstore.Snapshot{{ProductID: "SKU-2", Position: position.Position{LSN: 200, Index: 1}, Deleted: true}})
				return err
			}},
			{"heartbeat", func() error { return writer.Heartbeat(ctx, topic, time.Minute) }},
			{"trim changes", func() error { _, err := writer.TrimChanges(ctx, 1); return err }},
			{"read back", func() error { _, _, _, err := writer.StoredPosition(ctx, "SKU-1"); return err }},
			// What a rebuild adds: a lock with a lifetime, extended and
			// removed only by its holder, and deleting a generation's keys.
			{"rebuild lock", func() error {
				k := prefix + "rebuild-lock"
				if err := projector.SetNX(ctx, k, "me", time.Minute).Err(); err != nil {
					return err
				}
				const extend = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`
				return projector.Eval(ctx, extend, []string{k}, "me", 60000).Err()
			}},
			{"delete a generation", func() error {
				iter := projector.Scan(ctx, 0, prefix+"tombstone:*", 100).Iterator()
				for iter.Next(ctx) {
					if err := projector.Unlink(ctx, iter.Val()).Err(); err != nil {
						return err
					}
				}
				return iter.Err()
			}},
		}
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s as %s: %v", st.name, testenv.RedisProjector, err)
			}
		}
	})

	t.Run("the API reads it", func(t *testing.T) {
		p, err := reader.Get(ctx, "SKU-1")
		if err != nil || p.OnHand != 5 {
			t.Fatalf("get as %s: %+v %v", testenv.RedisAPI, p, err)
		}
		if _, missing, err := reader.GetMany(ctx, []string{"SKU-1", "SKU-2"}); err != nil || len(missing) != 1 {
			t.Errorf("get many: missing %v, %v", missing, err)
		}
		if ws, err := reader.Watermarks(ctx, topic); err != nil || len(ws) != 1 || ws[0].Offset != 7 {
			t.Errorf("watermarks: %+v %v", ws, err)
		}
		if _, ok, err := reader.LastHeartbeat(ctx, topic); err != nil || !ok {
			t.Errorf("heartbeat: %v %v", ok, err)
		}
		if ch, _, err := reader.Changes(ctx, "", 10); err != nil || len(ch) == 0 {
			t.Errorf("changes: %+v %v", ch, err)
		}
		if _, _, err := reader.LowStock(ctx, "WH-01", "", 10); err != nil {
			t.Errorf("low stock: %v", err)
		}
		if _, err := reader.ChangesHead(ctx); err != nil {
			t.Errorf("changes head: %v", err)
		}
		if _, err := reader.RebuildLocked(ctx); err != nil {
			t.Errorf("rebuild locked: %v", err)
		}
		// The API may load its read scripts when Redis lost them (SCRIPT
		// LOAD), but not empty the script cache under the projector.
		if err := api.ScriptFlush(ctx).Err(); err == nil {
			t.Errorf("SCRIPT FLUSH as %s: allowed", testenv.RedisAPI)
		}
	})

	t.Run("the API writes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			do   func() error
			want string
		}{
			{"set", func() error { return api.Set(ctx, prefix+"x", "1", 0).Err() }, "NOPERM"},
			{"del", func() error { return api.Del(ctx, prefix+"product:{SKU-1}").Err() }, "NOPERM"},
			{"eval", func() error {
				return api.Eval(ctx, "return 1", []string{prefix + "x"}).Err()
			}, "NOPERM"},
			// A script runs with its caller's rights: the API may load and
			// run one, but the write inside is refused.
			{"write through a script", func() error {
				sha, err := api.ScriptLoad(ctx, "return redis.call('SET', KEYS[1], 'x')").Result()
				if err != nil {
					return err
				}
				return api.EvalSha(ctx, sha, []string{prefix + "x"}).Err()
			}, "user executing the script can't run this command"},
			{"apply through the store", func() error {
				_, err := reader.Apply(ctx, []stockstore.Snapshot{snapshot("SKU-1", 999, 900)})
				return err
			}, "user executing the script can't run this command"},
			{"flush", func() error { return api.FlushAll(ctx).Err() }, "NOPERM"},
			{"read outside stock:", func() error { return api.Get(ctx, "other:x").Err() }, "NOPERM"},
		} {
			start := time.Now()
			refused(t, tc.name, tc.do(), "", time.Since(start), tc.want)
		}
		r := redisCLI(t, s, testenv.RedisAPI, s.Password(t, "redis", testenv.RedisAPI), "SET", prefix+"x", "1")
		refusedRun(t, "redis-cli SET as the API", r, "NOPERM", "set")
		if p, err := reader.Get(ctx, "SKU-1"); err != nil || p.OnHand != 5 {
			t.Errorf("after the refused writes: %+v %v, want on_hand 5", p, err)
		}
	})

	t.Run("the projector stays in its keys and commands", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			do   func() error
		}{
			{"write outside stock:", func() error { return projector.Set(ctx, "other:x", "1", 0).Err() }},
			{"flush", func() error { return projector.FlushAll(ctx).Err() }},
			{"config", func() error { return projector.ConfigSet(ctx, "save", "60 1").Err() }},
			{"keys", func() error { return projector.Keys(ctx, prefix+"*").Err() }},
			{"publish", func() error { return projector.Publish(ctx, "stock", "x").Err() }},
		} {
			start := time.Now()
			refused(t, tc.name, tc.do(), "", time.Since(start), "NOPERM")
		}
	})
}
