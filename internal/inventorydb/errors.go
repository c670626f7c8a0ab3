package inventorydb

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes raised by the write functions (class SK, "stock"). They are
// part of the SQL contract: clients in any language branch on them.
const (
	CodeInsufficientStock    = "SK001"
	CodeUnknownProduct       = "SK002"
	CodeUnknownWarehouse     = "SK003"
	CodeUnknownReservation   = "SK004"
	CodeReservationNotActive = "SK005"
	CodeDuplicateReservation = "SK006"
	CodeInvalidArgument      = "SK007"
)

// Refusals of the write API. Errors returned by this package's wrappers match
// them with errors.Is; errors.As still reaches the *pgconn.PgError.
var (
	ErrInsufficientStock    = errors.New("insufficient stock")
	ErrUnknownProduct       = errors.New("unknown product")
	ErrUnknownWarehouse     = errors.New("unknown warehouse")
	ErrUnknownReservation   = errors.New("unknown reservation")
	ErrReservationNotActive = errors.New("reservation not active")
	ErrDuplicateReservation = errors.New("duplicate reservation")
	ErrInvalidArgument      = errors.New("invalid argument")
)

var sentinels = map[string]error{
	CodeInsufficientStock:    ErrInsufficientStock,
	CodeUnknownProduct:       ErrUnknownProduct,
	CodeUnknownWarehouse:     ErrUnknownWarehouse,
	CodeUnknownReservation:   ErrUnknownReservation,
	CodeReservationNotActive: ErrReservationNotActive,
	CodeDuplicateReservation: ErrDuplicateReservation,
	CodeInvalidArgument:      ErrInvalidArgument,
}

// refusal is a write-function error carrying its sentinel. Its text is the
// server's ("ERROR: insufficient stock for ...: available 3, requested 5
// (SQLSTATE SK001)").
type refusal struct {
	sentinel error
	pg       *pgconn.PgError
}

func (e *refusal) Error() string   { return e.pg.Error() }
func (e *refusal) Unwrap() []error { return []error{e.sentinel, e.pg} }

// classify makes a write-function error match its sentinel; other errors
// pass through unchanged.
func classify(err error) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err
	}
	if s, ok := sentinels[pg.Code]; ok {
		return &refusal{sentinel: s, pg: pg}
	}
	return err
}

// IsInsufficientStock reports whether err is a refusal for lack of stock,
// whether it came through this package or straight from pgx.
func IsInsufficientStock(err error) bool {
	var pg *pgconn.PgError
	return errors.Is(err, ErrInsufficientStock) || (errors.As(err, &pg) && pg.Code == CodeInsufficientStock)
}
