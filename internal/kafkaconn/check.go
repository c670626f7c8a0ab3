package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/tlsconf"
)

// ErrRefused says the brokers refused this client: its credentials, or its
// TLS settings against the listener's. Retrying does not help; a program
// stops at start with it instead of retrying for ever.
var ErrRefused = errors.New("kafka refused the client")

// Check asks the brokers for their metadata once, as every client of c
// would connect (extra: the caller's options, such as a logger), until ctx
// ends. It returns nil when they answer; an error wrapping ErrRefused,
// saying which setting to look at, when they refuse this client; and
// otherwise the error as it is (a broker that is down is not a
// configuration error: the programs wait for it as they always did).
func (c Config) Check(ctx context.Context, extra ...kgo.Opt) error {
	opts, err := c.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
	if err == nil {
		return nil
	}
	if why := c.refusal(err); why != "" {
		return fmt.Errorf("%w: %s: %w", ErrRefused, why, err)
	}
	if c.SASLMechanism != "" && isEOF(err) {
		// Some brokers (and kfake) hang up on a wrong password instead of
		// answering SASL_AUTHENTICATION_FAILED; a broker that restarts does
		// too, so this stays a hint, not a refusal.
		return fmt.Errorf("reaching kafka at %s (the broker closed the connection: if it did so while this client "+
			"authenticated, check --kafka-sasl-username and the password): %w", strings.Join(c.Brokers, ","), err)
	}
	return fmt.Errorf("reaching kafka at %s: %w", strings.Join(c.Brokers, ","), err)
}

// refusal says which setting err points at, or "" when err is not a
// refusal. franz-go returns these at once, without retrying.
func (c Config) refusal(err error) string {
	var first *kgo.ErrFirstReadEOF
	if why := tlsconf.Refusal(err, "broker", "--kafka-", "--brokers"); why != "" {
		return why
	}
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf("authenticating as %q with %s failed: check --kafka-sasl-username and the password or token", c.SASLUsername, c.SASLMechanism)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the broker does not offer SASL %s on this listener (--kafka-sasl-mechanism)", c.SASLMechanism)
	case errors.Is(err, kerr.IllegalSaslState):
		return "the broker's SASL handshake failed (--kafka-sasl-mechanism)"
	// franz-go recognises a broker that hangs up at once, or answers a
	// plaintext request with a TLS alert, and says which in its message
	// only: no type or field to test.
	case strings.Contains(err.Error(), "plaintext connection speaking to a tls endpoint"),
		errors.As(err, &first) && strings.Contains(first.Error(), "requires TLS"):
		return "the listener speaks TLS (set --kafka-tls and --kafka-tls-ca-file)"
	case errors.As(err, &first) && strings.Contains(first.Error(), "SASL is required"):
		return "the listener requires SASL (--kafka-sasl-mechanism)"
	case errors.As(err, &first):
		return "the listener does not speak TLS (drop --kafka-tls, or use the broker's TLS listener)"
	case strings.Contains(err.Error(), "kafka: SASL password") || strings.Contains(err.Error(), "kafka: OAUTHBEARER token"):
		return "reading the SASL credentials"
	}
	return ""
}

func isEOF(err error) bool {
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset by peer")
}
