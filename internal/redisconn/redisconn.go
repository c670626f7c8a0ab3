// Package redisconn holds the Redis connection flags the projector and the
// query API share (kong `embed:""`): where Redis is, which ACL user and
// password, TLS, the key prefix; and the one way they become a stock
// store, the client of internal/stockstore under that prefix. The programs
// tune only the timeouts and pool to their use. Check tells a refusal
// (authentication, TLS) from a Redis that is only down. It never reads the
// environment (flagenv does, through the `env` tags).
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// Config is where Redis is and which keys are ours. Flag and environment
// names are the programs' interface (scripts, compose and docs use them):
// never rename them. Defaults come from stockstore through Vars. The
// password is a secret.Value, which never prints: the struct is safe to
// log whole.
type Config struct {
	Addr         string         `name:"redis-addr" env:"STOCK_REDIS_ADDR" default:"${redis_addr}" help:"Redis address (with --redis-cluster, seed nodes separated by commas)."`
	Cluster      bool           `name:"redis-cluster" env:"STOCK_REDIS_CLUSTER" help:"Redis is a Cluster: use the Cluster key layout (docs/redis-layout.md); the projector and the query API must both say so."`
	Sentinel     string         `name:"redis-sentinel-master" env:"STOCK_REDIS_SENTINEL_MASTER" help:"Redis is a primary with replicas under Sentinel, which knows the primary by this name: --redis-addr lists the Sentinels, separated by commas, and the client follows the primary through a failover."`
	Username     string         `name:"redis-username" env:"STOCK_REDIS_USERNAME" help:"Redis ACL user (empty: the default user)."`
	Password     secret.Value   `name:"redis-password" env:"STOCK_REDIS_PASSWORD" help:"Redis password (prefer --redis-password-file or the environment)."`
	PasswordFile string         `name:"redis-password-file" env:"STOCK_REDIS_PASSWORD_FILE" help:"File holding the Redis password, read at every new connection (a rotated password is used from the next connection on)."`
	TLS          tlsconf.Config `embed:"" prefix:"redis-" envprefix:"STOCK_REDIS_"`
	Prefix       string         `name:"redis-prefix" env:"STOCK_REDIS_PREFIX" default:"${redis_prefix}" help:"Prefix of every Redis key."`
}

// Vars are the variables Config's defaults name: pass them to the parser
// of a program that embeds it.
func Vars() kong.Vars {
	return kong.Vars{
		"redis_addr":   stockstore.DefaultClientConfig().Addrs[0],
		"redis_prefix": stockstore.DefaultPrefix,
	}
}

func (c Config) password() secret.Source {
	return secret.Source{Value: c.Password, File: c.PasswordFile}
}

// Validate reports every problem of c, its files read now.
func (c Config) Validate() error {
	cc, err := c.ClientConfig() // cc is whole even when TLS failed
	errs := []error{err, cc.Validate(), stockstore.ValidatePrefix(c.Prefix)}
	if err := c.password().Validate("--redis-password"); err != nil {
		errs = append(errs, fmt.Errorf("redis: %w", err))
	}
	return errors.Join(errs...)
}

// ClientConfig is the client configuration of c at stockstore's default
// timeouts. A password file is read at each new connection, not here. On
// an error (TLS files) the rest of the configuration is still filled in.
func (c Config) ClientConfig() (stockstore.ClientConfig, error) {
	cc := stockstore.DefaultClientConfig()
	cc.Addrs = []string{c.Addr}
	if c.Cluster || c.Sentinel != "" {
		cc.Cluster, cc.SentinelMaster = c.Cluster, c.Sentinel
		cc.Addrs = strings.Split(c.Addr, ",")
	}
	cc.Username = c.Username
	cc.Password = c.Password.Reveal()
	if pw := c.password(); pw.File != "" {
		user := c.Username
		cc.Credentials = func(context.Context) (string, string, error) {
			p, err := pw.Read()
			if err != nil {
				return "", "", fmt.Errorf("redis password: %w", err)
			}
			return user, p, nil
		}
	}
	tc, err := c.TLS.Client()
	if err != nil {
		return cc, fmt.Errorf("redis: %w", err)
	}
	cc.TLS = tc
	return cc, nil
}

// Open returns a store under c's prefix over a new client, whose
// configuration tune adjusts (nil: the defaults), and the client's close.
// It does not connect: the first command does.
func (c Config) Open(tune func(*stockstore.ClientConfig)) (store *stockstore.Store, closeClient func() error, err error) {
	cc, err := c.ClientConfig()
	if err != nil {
		return nil, nil, err
	}
	if tune != nil {
		tune(&cc)
	}
	rdb := stockstore.NewClient(cc)
	store, err = stockstore.New(rdb, c.Prefix)
	if err != nil {
		_ = rdb.Close() // nothing was sent on it
		return nil, nil, err
	}
	return store, rdb.Close, nil
}

// LogAttrs is c for a start log line, the password redacted.
func (c Config) LogAttrs() []any {
	attrs := []any{"redis_addr", c.Addr, "redis_cluster", c.Cluster, "redis_sentinel_master", c.Sentinel, "redis_username", c.Username,
		"redis_password", c.Password.String(), "redis_password_file", c.PasswordFile, "redis_prefix", c.Prefix}
	if c.TLS.On() {
		attrs = append(attrs, c.TLS.LogAttrs("redis_")...)
	}
	return attrs
}
