package inventorydb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change kinds stamped in inventory_levels.last_change_kind.
const (
	KindSeed     = "seed"
	KindReceive  = "receive"
	KindAdjust   = "adjust"
	KindCount    = "count"
	KindTransfer = "transfer"
	KindReserve  = "reserve"
	KindRelease  = "release"
	KindCommit   = "commit"
	KindExpire   = "expire"
)

// Reservation statuses.
const (
	StatusActive    = "active"
	StatusReleased  = "released"
	StatusCommitted = "committed"
	StatusExpired   = "expired"
)

// DefaultReservationTTL is stock_reserve's default p_ttl.
const DefaultReservationTTL = 15 * time.Minute

// Level is one inventory_levels row.
type Level struct {
	ProductID         string
	WarehouseID       string
	OnHand            int
	Reserved          int
	SafetyStock       int
	Incoming          int
	LowStockThreshold int
	Version           int64
	LastChangeKind    string
	LastChangeRef     string
	UpdatedAt         time.Time
}

// Available is what can still be promised; negative means oversold.
func (l Level) Available() int { return l.OnHand - l.Reserved - l.SafetyStock }

// Reservation is one stock_reservations row.
type Reservation struct {
	ReservationID string
	ProductID     string
	WarehouseID   string
	Quantity      int
	Status        string
	Backorder     bool // reserved beyond what was available
	ExpiresAt     time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const levelColumns = `product_id, warehouse_id, on_hand, reserved, safety_stock, incoming,
	low_stock_threshold, version, last_change_kind, last_change_ref, updated_at`

const reservationColumns = `reservation_id, product_id, warehouse_id, quantity, status, backorder,
	expires_at, created_at, updated_at`

func scanLevel(row pgx.Row) (Level, error) {
	var l Level
	err := row.Scan(&l.ProductID, &l.WarehouseID, &l.OnHand, &l.Reserved, &l.SafetyStock, &l.Incoming,
		&l.LowStockThreshold, &l.Version, &l.LastChangeKind, &l.LastChangeRef, &l.UpdatedAt)
	return l, err
}

func scanReservation(row pgx.Row) (Reservation, error) {
	var r Reservation
	err := row.Scan(&r.ReservationID, &r.ProductID, &r.WarehouseID, &r.Quantity, &r.Status, &r.Backorder,
		&r.ExpiresAt, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

func callLevel(ctx context.Context, q Querier, fn, args string, params ...any) (Level, error) {
	l, err := scanLevel(q.QueryRow(ctx, "SELECT "+levelColumns+" FROM "+fn+"("+args+")", params...))
	if err != nil {
		return Level{}, fmt.Errorf("calling %s: %w", fn, classify(err))
	}
	return l, nil
}

func callReservation(ctx context.Context, q Querier, fn, args string, params ...any) (Reservation, error) {
	r, err := scanReservation(q.QueryRow(ctx, "SELECT "+reservationColumns+" FROM "+fn+"("+args+")", params...))
	if err != nil {
		return Reservation{}, fmt.Errorf("calling %s: %w", fn, classify(err))
	}
	return r, nil
}

// Receive books quantity in (stock_receive).
func Receive(ctx context.Context, q Querier, productID, warehouseID string, quantity int, ref string) (Level, error) {
	return callLevel(ctx, q, "stock_receive", "$1, $2, $3, $4", productID, warehouseID, quantity, ref)
}

// Adjust corrects on_hand by delta for a reason (stock_adjust).
func Adjust(ctx context.Context, q Querier, productID, warehouseID string, delta int, reason, ref string) (Level, error) {
	return callLevel(ctx, q, "stock_adjust", "$1, $2, $3, $4, $5", productID, warehouseID, delta, reason, ref)
}

// Count sets on_hand to a counted figure (stock_count).
func Count(ctx context.Context, q Querier, productID, warehouseID string, counted int, ref string) (Level, error) {
	return callLevel(ctx, q, "stock_count", "$1, $2, $3, $4", productID, warehouseID, counted, ref)
}

// Transfer moves quantity of a product between warehouses (stock_transfer)
// and returns the source row, then the destination row.
func Transfer(ctx context.Context, q Querier, productID, from, to string, quantity int, ref string) (src, dst Level, err error) {
	rows, err := q.Query(ctx, "SELECT "+levelColumns+" FROM stock_transfer($1, $2, $3, $4, $5)",
		productID, from, to, quantity, ref)
	if err != nil {
		return Level{}, Level{}, fmt.Errorf("calling stock_transfer: %w", classify(err))
	}
	levels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Level, error) { return scanLevel(r) })
	if err != nil {
		return Level{}, Level{}, fmt.Errorf("calling stock_transfer: %w", classify(err))
	}
	if len(levels) != 2 {
		return Level{}, Level{}, fmt.Errorf("calling stock_transfer: got %d rows, want 2", len(levels))
	}
	return levels[0], levels[1], nil
}

// ReserveRequest is the input of Reserve.
type ReserveRequest struct {
	ReservationID  string
	ProductID      string
	WarehouseID    string
	Quantity       int
	TTL            time.Duration // 0 means DefaultReservationTTL
	AllowBackorder bool
}

// Reserve holds stock for an order (stock_reserve). It fails with
// ErrInsufficientStock when not enough is available and backorder is not
// allowed.
func Reserve(ctx context.Context, q Querier, r ReserveRequest) (Reservation, error) {
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultReservationTTL
	}
	return callReservation(ctx, q, "stock_reserve", "$1, $2, $3, $4, $5::interval, $6",
		r.ReservationID, r.ProductID, r.WarehouseID, r.Quantity, ttl, r.AllowBackorder)
}

// Release cancels an active reservation (stock_release). An empty ref stamps
// the reservation id.
func Release(ctx context.Context, q Querier, reservationID, ref string) (Reservation, error) {
	return callReservation(ctx, q, "stock_release", "$1, $2", reservationID, ref)
}

// Commit ships an active reservation (stock_commit). An empty ref stamps the
// reservation id.
func Commit(ctx context.Context, q Querier, reservationID, ref string) (Reservation, error) {
	return callReservation(ctx, q, "stock_commit", "$1, $2", reservationID, ref)
}

// Expire runs one sweep of stock_expire over reservations due at now (the
// database clock when now is zero), at most limit of them, and returns how
// many expired.
func Expire(ctx context.Context, q Querier, now time.Time, limit int) (int, error) {
	var at *time.Time
	if !now.IsZero() {
		at = &now
	}
	var n int
	if err := q.QueryRow(ctx, "SELECT stock_expire(coalesce($1::timestamptz, now()), $2)", at, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("calling stock_expire: %w", classify(err))
	}
	return n, nil
}

// LoadLevel reads one inventory row; pgx.ErrNoRows when the pair has none.
func LoadLevel(ctx context.Context, q Querier, productID, warehouseID string) (Level, error) {
	l, err := scanLevel(q.QueryRow(ctx, "SELECT "+levelColumns+
		" FROM inventory_levels WHERE product_id = $1 AND warehouse_id = $2", productID, warehouseID))
	if err != nil {
		return Level{}, fmt.Errorf("loading level %s/%s: %w", productID, warehouseID, err)
	}
	return l, nil
}

// LoadReservation reads one reservation; pgx.ErrNoRows when there is none.
func LoadReservation(ctx context.Context, q Querier, reservationID string) (Reservation, error) {
	r, err := scanReservation(q.QueryRow(ctx, "SELECT "+reservationColumns+
		" FROM stock_reservations WHERE reservation_id = $1", reservationID))
	if err != nil {
		return Reservation{}, fmt.Errorf("loading reservation %s: %w", reservationID, err)
	}
	return r, nil
}

// AddProduct creates a product unless it exists. Products carry no stock;
// the write functions create inventory rows on first use.
func AddProduct(ctx context.Context, q Querier, productID, name string) error {
	if _, err := q.Exec(ctx, "INSERT INTO products (product_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
		productID, name); err != nil {
		return fmt.Errorf("adding product %s: %w", productID, err)
	}
	return nil
}

// AddWarehouse creates a warehouse unless it exists.
func AddWarehouse(ctx context.Context, q Querier, warehouseID, name string) error {
	if _, err := q.Exec(ctx, "INSERT INTO warehouses (warehouse_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
		warehouseID, name); err != nil {
		return fmt.Errorf("adding warehouse %s: %w", warehouseID, err)
	}
	return nil
}
