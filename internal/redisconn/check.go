package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// ErrRefused says Redis refused this client: its user or password, or its
// TLS settings against the server's. Retrying does not help; a program
// stops at start with it instead of retrying for ever.
var ErrRefused = errors.New("redis refused the client")

// Check pings Redis once through store (opened from c). It returns nil
// when Redis answers; an error wrapping ErrRefused, saying which setting to
// look at, when Redis refuses this client; otherwise the error as it is (a
// Redis that is down is not a configuration error: the programs wait for
// it as they always did).
func (c Config) Check(ctx context.Context, store *stockstore.Store) error {
	err := store.Ping(ctx)
	if err == nil {
		return nil
	}
	if why := c.refusal(err); why != "" {
		return fmt.Errorf("%w: %s: %w", ErrRefused, why, err)
	}
	return fmt.Errorf("reaching redis at %s: %w", c.Addr, err)
}

// refusal says which setting err points at, or "" when err is not a
// refusal.
func (c Config) refusal(err error) string {
	if why := tlsconf.Refusal(err, "server", "--redis-", "--redis-addr"); why != "" {
		return why
	}
	msg := err.Error()
	switch {
	// Redis's own error prefixes: a wrong user or password, none given to
	// a server that wants one, a user without the right to PING.
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"):
		return fmt.Sprintf("authenticating as %q failed: check --redis-username and the password", c.Username)
	case strings.Contains(msg, "NOPERM"):
		return fmt.Sprintf("user %q may not run the commands the program needs (its ACL rules)", c.Username)
	case strings.Contains(msg, "redis password:"):
		return "reading the password"
	case !c.TLS.On() && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset by peer")):
		// Redis's TLS port hangs up on a plaintext client without a word;
		// a port that accepted the connection and closed it at once is
		// that far more often than a Redis going down at that moment.
		return "the server closed the connection at once: it probably speaks TLS on this port (set --redis-tls and --redis-tls-ca-file)"
	}
	return ""
}
