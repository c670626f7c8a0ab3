package stockstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientConfig configures the one Redis client kind of the project. The
// timeouts are short on purpose: the query API must answer 503 quickly when
// Redis is down rather than hold connections.
type ClientConfig struct {
	// Addrs are the Redis address (one), with Cluster the seed nodes, with
	// SentinelMaster the Sentinels.
	Addrs   []string
	Cluster bool
	// SentinelMaster, when set, is the name under which the Sentinels at
	// Addrs know the primary: the client asks them for it and follows it
	// through a failover.
	SentinelMaster string
	Username       string
	Password       string
	// Credentials, when set, is asked for the user and password at every
	// new connection instead of Username and Password: a password file an
	// agent rotates is followed without a restart.
	Credentials func(ctx context.Context) (username, password string, err error)
	// TLS, when set, is the TLS of every connection (to each node of a
	// Cluster too; with no ServerName, the host dialled is checked).
	TLS *tls.Config
	DB  int

	DialTimeout time.Duration
	// DialAttempts is how many times one connection is dialled before the
	// command fails (go-redis defaults to 5, 100ms apart: too slow to fail
	// for an API that must answer 503 quickly).
	DialAttempts int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolTimeout bounds the wait for a free connection.
	PoolTimeout time.Duration
	PoolSize    int
	// MaxRetries of one command on network errors; 0 disables retries.
	MaxRetries int
}

// DefaultClientConfig returns the defaults for a local Redis.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Addrs:        []string{"127.0.0.1:6379"},
		DialTimeout:  time.Second,
		DialAttempts: 1,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		PoolTimeout:  time.Second,
		MaxRetries:   1,
	}
}

// Validate reports every problem of c.
func (c ClientConfig) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("redis: no address"))
	}
	for _, a := range c.Addrs {
		if a == "" {
			errs = append(errs, errors.New("redis: empty address"))
		}
	}
	if !c.Cluster && c.SentinelMaster == "" && len(c.Addrs) > 1 {
		errs = append(errs, fmt.Errorf("redis: %d addresses without cluster mode or a sentinel master", len(c.Addrs)))
	}
	if c.Cluster && c.SentinelMaster != "" {
		errs = append(errs, errors.New("redis: a Cluster has no sentinel master (it fails over by itself)"))
	}
	if c.Cluster && c.DB != 0 {
		errs = append(errs, errors.New("redis: a cluster has only database 0"))
	}
	for name, d := range map[string]time.Duration{
		"dial timeout": c.DialTimeout, "read timeout": c.ReadTimeout,
		"write timeout": c.WriteTimeout, "pool timeout": c.PoolTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("redis: %s must be positive, got %s", name, d))
		}
	}
	if c.PoolSize < 0 || c.MaxRetries < 0 {
		errs = append(errs, errors.New("redis: pool size and max retries must not be negative"))
	}
	if c.DialAttempts < 1 {
		errs = append(errs, fmt.Errorf("redis: dial attempts must be at least 1, got %d", c.DialAttempts))
	}
	return errors.Join(errs...)
}

// NewClient returns a Redis client (a Cluster client with Cluster set, a
// Sentinel-following one with SentinelMaster set) applying c's timeouts.
// It does not connect: the first command does.
func NewClient(c ClientConfig) redis.UniversalClient {
	// go-redis treats -1 as "no retries" and 0 as "the default (3)".
	retries := c.MaxRetries
	if retries == 0 {
		retries = -1
	}
	if c.Cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password,
			CredentialsProviderContext: c.Credentials, TLSConfig: c.TLS,
			DialTimeout: c.DialTimeout, DialerRetries: max(c.DialAttempts, 1),
			ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
			PoolTimeout: c.PoolTimeout, PoolSize: c.PoolSize, MaxRetries: retries,
		})
	}
	if c.SentinelMaster != "" {
		// The Sentinels are asked without credentials (Redis' default for
		// them); the primary and replicas with the client's.
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.SentinelMaster, SentinelAddrs: c.Addrs,
			Username: c.Username, Password: c.Password, DB: c.DB,
			CredentialsProviderContext: c.Credentials, TLSConfig: c.TLS,
			DialTimeout: c.DialTimeout, DialerRetries: max(c.DialAttempts, 1),
			ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
			PoolTimeout: c.PoolTimeout, PoolSize: c.PoolSize, MaxRetries: retries,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr: c.Addrs[0], Username: c.Username, Password: c.Password, DB: c.DB,
		CredentialsProviderContext: c.Credentials, TLSConfig: c.TLS,
		DialTimeout: c.DialTimeout, DialerRetries: max(c.DialAttempts, 1),
		ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		PoolTimeout: c.PoolTimeout, PoolSize: c.PoolSize, MaxRetries: retries,
	})
}

// SetLogger sends go-redis's own log lines (dial failures, pool trouble) to
// log at warn level instead of the standard logger. It is process-global,
// like go-redis's logger: call it once from main.
func SetLogger(log *slog.Logger) {
	redis.SetLogger(redisLogger{log})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "message", fmt.Sprintf(format, v...))
}
