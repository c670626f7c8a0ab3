package kafkaconn

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// mechanism is c's SASL mechanism. Its credentials are read when franz-go
// authenticates a connection (each new connection and each
// reauthentication the broker asks for), not once here: a password or
// token file that an agent rewrites is followed without a restart, and
// the secret lives in memory only while a handshake uses it.
func (c Config) mechanism() (sasl.Mechanism, error) {
	user, pw, tok := c.SASLUsername, c.password(), c.token()
	readPassword := func() (string, error) {
		p, err := pw.Read()
		if err != nil {
			return "", fmt.Errorf("kafka: SASL password: %w", err)
		}
		return p, nil
	}
	switch c.SASLMechanism {
	case Plain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := readPassword()
			return plain.Auth{User: user, Pass: p}, err
		}), nil
	case ScramSHA256, ScramSHA512:
		auth := func(context.Context) (scram.Auth, error) {
			p, err := readPassword()
			return scram.Auth{User: user, Pass: p}, err
		}
		if c.SASLMechanism == ScramSHA256 {
			return scram.Sha256(auth), nil
		}
		return scram.Sha512(auth), nil
	case OAuthBearer:
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			t, err := tok.Read()
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("kafka: OAUTHBEARER token: %w", err)
			}
			return oauth.Auth{Token: t}, nil
		}), nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q", c.SASLMechanism)
}
