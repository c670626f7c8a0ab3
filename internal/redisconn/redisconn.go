// Package redisconn holds the Redis connection flags the projector and the
// query API share (kong `embed:""`), and the one way they become a stock
// store: the client of internal/stockstore under the configured key prefix.
// The programs tune only the timeouts and pool to their use. It never reads
// the environment (flagenv does, through the `env` tags).
package redisconn

import (
	"errors"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Config is where Redis is and which keys are ours. Flag and environment
// names are the programs' interface (scripts, compose and docs use them):
// never rename them. Defaults come from stockstore through Vars.
type Config struct {
	Addr     string `name:"redis-addr" env:"STOCK_REDIS_ADDR" default:"${redis_addr}" help:"Redis address (with --redis-cluster, seed nodes separated by commas)."`
	Cluster  bool   `name:"redis-cluster" env:"STOCK_REDIS_CLUSTER" help:"Redis is a Cluster: use the Cluster key layout (docs/redis-layout.md); the projector and the query API must both say so."`
	Password string `name:"redis-password" env:"STOCK_REDIS_PASSWORD" help:"Redis password (prefer the environment)."`
	Prefix   string `name:"redis-prefix" env:"STOCK_REDIS_PREFIX" default:"${redis_prefix}" help:"Prefix of every Redis key."`
}

// Vars are the variables Config's defaults name: pass them to the parser
// of a program that embeds it.
func Vars() kong.Vars {
	return kong.Vars{
		"redis_addr":   stockstore.DefaultClientConfig().Addrs[0],
		"redis_prefix": stockstore.DefaultPrefix,
	}
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	return errors.Join(c.ClientConfig().Validate(), stockstore.ValidatePrefix(c.Prefix))
}

// ClientConfig is the client configuration of c at stockstore's default
// timeouts.
func (c Config) ClientConfig() stockstore.ClientConfig {
	cc := stockstore.DefaultClientConfig()
	cc.Addrs = []string{c.Addr}
	if c.Cluster {
		cc.Cluster = true
		cc.Addrs = strings.Split(c.Addr, ",")
	}
	cc.Password = c.Password
	return cc
}

// Open returns a store under c's prefix over a new client, whose
// configuration tune adjusts (nil: the defaults), and the client's close.
// It does not connect: the first command does.
func (c Config) Open(tune func(*stockstore.ClientConfig)) (store *stockstore.Store, closeClient func() error, err error) {
	cc := c.ClientConfig()
	if tune != nil {
		tune(&cc)
	}
	rdb := stockstore.NewClient(cc)
	store, err = stockstore.New(rdb, c.Prefix)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return store, rdb.Close, nil
}

// LogAttrs is c for a start log line, the password redacted.
func (c Config) LogAttrs() []any {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return []any{"redis_addr", c.Addr, "redis_cluster", c.Cluster, "redis_password", pw, "redis_prefix", c.Prefix}
}
