// Package kafkaconn says how every Kafka client of the project reaches the
// brokers: the connection flags a program embeds (kong `embed:""`), which
// are also the typed config its packages take, and Opts, the options every
// client is built from: seed brokers, TLS (kgo.DialTLSConfig) and SASL
// (franz-go's plain, scram and oauth mechanisms). So the producer's writer
// and readers, its status, the projector's consumer, rebuild, dead-letter
// tools and status all connect the same way. Check tells a refusal
// (authentication, TLS) from a broker that is only unreachable, for a clear
// error at start. It never reads the environment (flagenv does, through
// the `env` tags) and keeps no client beyond Check's one request.
package kafkaconn

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// The SASL mechanisms Config takes.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Config is where the brokers are and how to talk to them. Flag and
// environment names are the programs' interface (scripts, compose and docs
// use them): never rename them. Secrets are secret.Value, which never
// prints: the struct is safe to log whole.
type Config struct {
	Brokers []string       `name:"brokers" env:"STOCK_KAFKA_BROKERS" default:"127.0.0.1:9092" sep:"," help:"Kafka seed brokers."`
	TLS     tlsconf.Config `embed:"" prefix:"kafka-" envprefix:"STOCK_KAFKA_"`

	SASLMechanism    string       `name:"kafka-sasl-mechanism" env:"STOCK_KAFKA_SASL_MECHANISM" enum:",PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER" default:"" help:"SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (empty: no SASL). Use it with TLS: PLAIN sends the password as it is."`
	SASLUsername     string       `name:"kafka-sasl-username" env:"STOCK_KAFKA_SASL_USERNAME" help:"SASL user (PLAIN and SCRAM; a Confluent Cloud API key)."`
	SASLPassword     secret.Value `name:"kafka-sasl-password" env:"STOCK_KAFKA_SASL_PASSWORD" help:"SASL password (PLAIN and SCRAM; a Confluent Cloud API secret). Prefer --kafka-sasl-password-file or the environment."`
	SASLPasswordFile string       `name:"kafka-sasl-password-file" env:"STOCK_KAFKA_SASL_PASSWORD_FILE" help:"File holding the SASL password, read at every authentication (a rotated password is used from the next connection on)."`
	OAuthToken       secret.Value `name:"kafka-sasl-oauth-token" env:"STOCK_KAFKA_SASL_OAUTH_TOKEN" help:"OAUTHBEARER token. It expires: prefer --kafka-sasl-oauth-token-file, which an agent refreshes."`
	OAuthTokenFile   string       `name:"kafka-sasl-oauth-token-file" env:"STOCK_KAFKA_SASL_OAUTH_TOKEN_FILE" help:"File holding the OAUTHBEARER token, read at every authentication, so that a token an agent rewrites is picked up without a restart."`
}

// password is the SASL password's source.
func (c Config) password() secret.Source {
	return secret.Source{Value: c.SASLPassword, File: c.SASLPasswordFile}
}

// token is the OAUTHBEARER token's source.
func (c Config) token() secret.Source {
	return secret.Source{Value: c.OAuthToken, File: c.OAuthTokenFile}
}

// Validate reports every problem of c, its files read now.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no broker"))
	}
	for i, b := range c.Brokers {
		if b == "" {
			errs = append(errs, fmt.Errorf("kafka: broker %d of %d is empty", i+1, len(c.Brokers)))
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("kafka: %w", err))
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUsername != "" || c.password().Set() || c.token().Set() {
			errs = append(errs, errors.New("kafka: SASL credentials without --kafka-sasl-mechanism"))
		}
	case Plain, ScramSHA256, ScramSHA512:
		if c.SASLUsername == "" || !c.password().Set() {
			errs = append(errs, fmt.Errorf("kafka: SASL %s needs a username and a password (or password file)", c.SASLMechanism))
		} else if err := c.password().Validate("--kafka-sasl-password"); err != nil {
			errs = append(errs, fmt.Errorf("kafka: %w", err))
		}
		if c.token().Set() {
			errs = append(errs, fmt.Errorf("kafka: an OAUTHBEARER token with SASL %s", c.SASLMechanism))
		}
	case OAuthBearer:
		if !c.token().Set() {
			errs = append(errs, errors.New("kafka: SASL OAUTHBEARER needs a token (or token file)"))
		} else if err := c.token().Validate("--kafka-sasl-oauth-token"); err != nil {
			errs = append(errs, fmt.Errorf("kafka: %w", err))
		}
		if c.password().Set() {
			errs = append(errs, errors.New("kafka: a SASL password with OAUTHBEARER (it takes a token)"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka: unknown SASL mechanism %q", c.SASLMechanism))
	}
	return errors.Join(errs...)
}

// Opts are the options every Kafka client starts from; callers append
// their own (client id, group, transactional id, hooks). A fresh slice each
// call, so that one caller's appends never reach another's. Without TLS
// and SASL it is the seed brokers alone: plaintext pays nothing.
func (c Config) Opts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	tc, err := c.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if tc != nil {
		// franz-go sets the server name per broker dialled when tc has
		// none, so that every broker's certificate is checked against its
		// own name.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASLMechanism != "" {
		m, err := c.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// LogAttrs is c for a start log line: brokers, TLS files, the SASL user
// and whether a password or token is set, never what it is.
func (c Config) LogAttrs() []any {
	attrs := []any{"brokers", c.Brokers}
	if c.TLS.On() {
		attrs = append(attrs, c.TLS.LogAttrs("kafka_")...)
	}
	if c.SASLMechanism != "" {
		attrs = append(attrs, "kafka_sasl_mechanism", c.SASLMechanism, "kafka_sasl_username", c.SASLUsername,
			"kafka_sasl_password", c.SASLPassword.String(), "kafka_sasl_password_file", c.SASLPasswordFile,
			"kafka_sasl_oauth_token", c.OAuthToken.String(), "kafka_sasl_oauth_token_file", c.OAuthTokenFile)
	}
	return attrs
}
