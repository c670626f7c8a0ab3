package inventorydb

import (
	"context"
	"fmt"
	"time"
)

// Overdue reports the active reservations past their expiry (by the
// database clock): how many, and how long ago the oldest was due (0 when
// none). It is what the expiry sweep has left to do; the partial index on
// active reservations by expiry keeps it a short index scan.
func Overdue(ctx context.Context, q Querier) (count int64, oldest time.Duration, err error) {
	var secs float64
	err = q.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(expires_at)), 0)::float8
		FROM stock_reservations WHERE status = 'active' AND expires_at <= now()`).Scan(&count, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("reading overdue reservations: %w", err)
	}
	return count, time.Duration(secs * float64(time.Second)), nil
}
