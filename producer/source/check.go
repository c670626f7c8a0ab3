package source

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrRefused says PostgreSQL refused the producer's connection: its role
// or password, pg_hba.conf, or the TLS settings of the URL (sslmode,
// sslrootcert, sslcert). Retrying does not help; the producer stops at
// start with it instead of restarting its pipeline for ever.
var ErrRefused = errors.New("postgres refused the client")

// Check connects once with url and closes the connection. It returns nil
// when PostgreSQL accepts it; an error wrapping ErrRefused, saying what to
// look at, when it refuses this client; otherwise the error as it is (a
// database that is down is not a configuration error: the producer waits
// for it as it always did).
func Check(ctx context.Context, url string) error {
	conn, err := Connect(ctx, url)
	if err == nil {
		return conn.Close(ctx)
	}
	var (
		pg   *pgconn.PgError
		host x509.HostnameError
		ca   x509.UnknownAuthorityError
	)
	switch {
	// Class 28, invalid authorization: a wrong password, an unknown role,
	// a pg_hba.conf line that rejects the connection (as one without TLS).
	case errors.As(err, &pg) && strings.HasPrefix(pg.Code, "28"):
		return fmt.Errorf("%w: the role, its password or pg_hba.conf (a server that requires TLS rejects sslmode=disable): %w", ErrRefused, err)
	case errors.As(err, &host):
		return fmt.Errorf("%w: the server's certificate is not for the host in the URL: %w", ErrRefused, err)
	case errors.As(err, &ca):
		return fmt.Errorf("%w: the server's certificate is not signed by the CA in sslrootcert: %w", ErrRefused, err)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		return fmt.Errorf("%w: the server does not speak TLS (sslmode): %w", ErrRefused, err)
	}
	return err
}
