package inventorydb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/inventorydb"
)

func TestWritesChangeStockAndStampTheRow(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture)
		do    func(t *testing.T, f *fixture) error
		want  func(f *fixture) []row
		check func(t *testing.T, f *fixture) // extra assertions, optional
	}{
		{
			name: "receive creates the missing row at version 1",
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product, f.wh[0], 10, "po-1")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 10, 0, 1, "receive", "po-1"}} },
		},
		{
			name:  "receive adds to on_hand",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product, f.wh[0], 5, "po-2")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 15, 0, 2, "receive", "po-2"}} },
		},
		{
			name:  "adjust down journals the reason",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], -3, "damaged", "adj-1")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 7, 0, 2, "adjust", "adj-1"}} },
			check: func(t *testing.T, f *fixture) {
				var delta, after int
				var reason, ref string
				err := f.db.QueryRow(ctx, `SELECT delta, reason, ref, on_hand_after FROM stock_adjustments
					WHERE product_id = $1`, f.product).Scan(&delta, &reason, &ref, &after)
				if err != nil {
					t.Fatalf("reading journal: %v", err)
				}
				if delta != -3 || reason != "damaged" || ref != "adj-1" || after != 7 {
					t.Errorf("journal = (%d, %q, %q, %d), want (-3, damaged, adj-1, 7)", delta, reason, ref, after)
				}
			},
		},
		{
			name:  "adjust up",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], 4, "found", "adj-2")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 14, 0, 2, "adjust", "adj-2"}} },
		},
		{
			name: "adjust may leave on_hand below reserved: oversold shows",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 10)
				f.reserve(t, "a", f.wh[0], 8)
			},
			do: func(t *testing.T, f *fixture) error {
				l, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], -5, "lost", "adj-3")
				if err == nil && l.Available() != -3 {
					t.Errorf("available = %d, want -3", l.Available())
				}
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 5, 8, 3, "adjust", "adj-3"}} },
		},
		{
			name:  "count sets on_hand absolute",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Count(ctx, f.db, f.product, f.wh[0], 3, "cnt-1")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 3, 0, 2, "count", "cnt-1"}} },
		},
		{
			name:  "count confirming the figure is still a write",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Count(ctx, f.db, f.product, f.wh[0], 10, "cnt-2")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 10, 0, 2, "count", "cnt-2"}} },
		},
		{
			name:  "transfer moves stock and creates the destination",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				src, dst, err := inventorydb.Transfer(ctx, f.db, f.product, f.wh[0], f.wh[1], 4, "t-1")
				if err == nil && (src.WarehouseID != f.wh[0] || dst.WarehouseID != f.wh[1]) {
					t.Errorf("returned %s then %s, want source %s then destination %s",
						src.WarehouseID, dst.WarehouseID, f.wh[0], f.wh[1])
				}
				return err
			},
			want: func(f *fixture) []row {
				return []row{{f.wh[0], 6, 0, 2, "transfer", "t-1"}, {f.wh[1], 4, 0, 1, "transfer", "t-1"}}
			},
		},
		{
			name: "transfer towards the lower warehouse id, around reserved stock",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 1)
				f.receive(t, f.wh[1], 10)
				f.reserve(t, "a", f.wh[1], 3)
			},
			do: func(t *testing.T, f *fixture) error {
				_, _, err := inventorydb.Transfer(ctx, f.db, f.product, f.wh[1], f.wh[0], 7, "t-2")
				return err
			},
			want: func(f *fixture) []row {
				return []row{{f.wh[0], 8, 0, 2, "transfer", "t-2"}, {f.wh[1], 3, 3, 3, "transfer", "t-2"}}
			},
		},
		{
			name:  "reserve holds stock",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 10) },
			do: func(t *testing.T, f *fixture) error {
				r, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
					ReservationID: f.id(t, "a"), ProductID: f.product, WarehouseID: f.wh[0], Quantity: 4,
				})
				if err != nil {
					return err
				}
				if r.Status != inventorydb.StatusActive || r.Backorder || r.Quantity != 4 {
					t.Errorf("reservation = %+v, want active, 4, no backorder", r)
				}
				if got := r.ExpiresAt.Sub(r.CreatedAt); got != inventorydb.DefaultReservationTTL {
					t.Errorf("expires %v after creation, want %v", got, inventorydb.DefaultReservationTTL)
				}
				return nil
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 10, 4, 2, "reserve", f.ids["a"]}} },
		},
		{
			name:  "reserve beyond available with backorder allowed goes oversold",
			setup: func(t *testing.T, f *fixture) { f.receive(t, f.wh[0], 3) },
			do: func(t *testing.T, f *fixture) error {
				r, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
					ReservationID: f.id(t, "a"), ProductID: f.product, WarehouseID: f.wh[0], Quantity: 5,
					TTL: time.Hour, AllowBackorder: true,
				})
				if err == nil && !r.Backorder {
					t.Error("backorder = false, want true")
				}
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 3, 5, 2, "reserve", f.ids["a"]}} },
		},
		{
			name: "release gives reserved back, ref defaults to the reservation id",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 10)
				f.reserve(t, "a", f.wh[0], 4)
			},
			do: func(t *testing.T, f *fixture) error {
				r, err := inventorydb.Release(ctx, f.db, f.ids["a"], "")
				if err == nil && r.Status != inventorydb.StatusReleased {
					t.Errorf("status = %s, want released", r.Status)
				}
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 10, 0, 3, "release", f.ids["a"]}} },
		},
		{
			name: "release with a ref",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 10)
				f.reserve(t, "a", f.wh[0], 4)
				f.reserve(t, "b", f.wh[0], 2)
			},
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Release(ctx, f.db, f.ids["a"], "cart-abandoned")
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 10, 2, 4, "release", "cart-abandoned"}} },
		},
		{
			name: "commit ships: on_hand and reserved both drop",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 10)
				f.reserve(t, "a", f.wh[0], 4)
			},
			do: func(t *testing.T, f *fixture) error {
				r, err := inventorydb.Commit(ctx, f.db, f.ids["a"], "ship-1")
				if err == nil && r.Status != inventorydb.StatusCommitted {
					t.Errorf("status = %s, want committed", r.Status)
				}
				return err
			},
			want: func(f *fixture) []row { return []row{{f.wh[0], 6, 0, 3, "commit", "ship-1"}} },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			if err := tc.do(t, f); err != nil {
				t.Fatalf("write failed: %v", err)
			}
			if got, want := f.rows(t), tc.want(f); !slices.Equal(got, want) {
				t.Errorf("rows =\n  %+v\nwant\n  %+v", got, want)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestRefusalsChangeNothing(t *testing.T) {
	ctx := context.Background()
	stocked := func(t *testing.T, f *fixture) {
		f.receive(t, f.wh[0], 10)
		f.reserve(t, "a", f.wh[0], 4)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		do      func(t *testing.T, f *fixture) error
		code    string
		raw     bool     // called straight through pgx: no sentinel to match
		message []string // substrings the message must name
	}{
		{
			name: "receive of an unknown product",
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product+"_nope", f.wh[0], 1, "x")
				return err
			},
			code: inventorydb.CodeUnknownProduct, message: []string{"unknown product", f0product},
		},
		{
			name: "receive into an unknown warehouse",
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product, "wh_nope_"+f.product, 1, "x")
				return err
			},
			code: inventorydb.CodeUnknownWarehouse, message: []string{"unknown warehouse"},
		},
		{
			name: "receive of zero", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product, f.wh[0], 0, "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument, message: []string{"quantity must be > 0"},
		},
		{
			name: "receive of a negative quantity", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Receive(ctx, f.db, f.product, f.wh[0], -5, "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
		{
			name: "receive with a NULL quantity", setup: stocked, raw: true,
			do: func(t *testing.T, f *fixture) error {
				_, err := f.db.Exec(ctx, "SELECT stock_receive($1, $2, NULL, 'x')", f.product, f.wh[0])
				return err
			},
			code: inventorydb.CodeInvalidArgument, message: []string{"must not be NULL"},
		},
		{
			name: "adjust by zero", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], 0, "damaged", "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
		{
			name: "adjust without a reason", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], -1, "  ", "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument, message: []string{"reason"},
		},
		{
			name: "adjust below zero on hand", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Adjust(ctx, f.db, f.product, f.wh[0], -11, "lost", "x")
				return err
			},
			code: inventorydb.CodeInsufficientStock, message: []string{"on_hand 10"},
		},
		{
			name: "count below zero", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Count(ctx, f.db, f.product, f.wh[0], -1, "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
		{
			name: "transfer to the same warehouse", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, _, err := inventorydb.Transfer(ctx, f.db, f.product, f.wh[0], f.wh[0], 1, "x")
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
		{
			name: "transfer of reserved stock", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, _, err := inventorydb.Transfer(ctx, f.db, f.product, f.wh[0], f.wh[1], 7, "x")
				return err
			},
			code: inventorydb.CodeInsufficientStock, message: []string{"unreserved on_hand 6"},
		},
		{
			name: "transfer from a warehouse that never held the product", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, _, err := inventorydb.Transfer(ctx, f.db, f.product, f.wh[1], f.wh[0], 1, "x")
				return err
			},
			code: inventorydb.CodeInsufficientStock,
		},
		{
			name: "reserve more than available", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
					ReservationID: f.id(t, "b"), ProductID: f.product, WarehouseID: f.wh[0], Quantity: 7,
				})
				return err
			},
			code: inventorydb.CodeInsufficientStock, message: []string{"available 6", "requested 7"},
		},
		{
			name: "reserve into safety stock",
			setup: func(t *testing.T, f *fixture) {
				f.receive(t, f.wh[0], 10)
				// No write function sets safety stock: a planner's setting, not a stock move.
				if _, err := f.db.Exec(ctx, `UPDATE inventory_levels SET safety_stock = 4
					WHERE product_id = $1 AND warehouse_id = $2`, f.product, f.wh[0]); err != nil {
					t.Fatal(err)
				}
			},
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
					ReservationID: f.id(t, "b"), ProductID: f.product, WarehouseID: f.wh[0], Quantity: 7,
				})
				return err
			},
			code: inventorydb.CodeInsufficientStock, message: []string{"available 6", "requested 7"},
		},
		{
			name: "reserve with a taken reservation id", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
					ReservationID: f.id(t, "a"), ProductID: f.product, WarehouseID: f.wh[0], Quantity: 1,
				})
				return err
			},
			code: inventorydb.CodeDuplicateReservation,
		},
		{
			name: "reserve without a ttl", setup: stocked, raw: true,
			do: func(t *testing.T, f *fixture) error {
				_, err := f.db.Exec(ctx, "SELECT stock_reserve($1, $2, $3, 1, NULL)", f.id(t, "b"), f.product, f.wh[0])
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
		{
			name: "release twice",
			setup: func(t *testing.T, f *fixture) {
				stocked(t, f)
				if _, err := inventorydb.Release(ctx, f.db, f.ids["a"], ""); err != nil {
					t.Fatal(err)
				}
			},
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Release(ctx, f.db, f.ids["a"], "")
				return err
			},
			code: inventorydb.CodeReservationNotActive, message: []string{"is released, not active"},
		},
		{
			name: "release of an unknown reservation", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Release(ctx, f.db, f.id(t, "never"), "")
				return err
			},
			code: inventorydb.CodeUnknownReservation,
		},
		{
			name: "commit after release",
			setup: func(t *testing.T, f *fixture) {
				stocked(t, f)
				if _, err := inventorydb.Release(ctx, f.db, f.ids["a"], ""); err != nil {
					t.Fatal(err)
				}
			},
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Commit(ctx, f.db, f.ids["a"], "")
				return err
			},
			code: inventorydb.CodeReservationNotActive,
		},
		{
			name: "commit of more than a count left on hand",
			setup: func(t *testing.T, f *fixture) {
				stocked(t, f)
				if _, err := inventorydb.Count(ctx, f.db, f.product, f.wh[0], 2, "cnt"); err != nil {
					t.Fatal(err)
				}
			},
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Commit(ctx, f.db, f.ids["a"], "")
				return err
			},
			code: inventorydb.CodeInsufficientStock, message: []string{"on_hand 2"},
		},
		{
			name: "expire with a zero limit", setup: stocked,
			do: func(t *testing.T, f *fixture) error {
				_, err := inventorydb.Expire(ctx, f.db, time.Time{}, 0)
				return err
			},
			code: inventorydb.CodeInvalidArgument,
		},
	}
	sentinel := map[string]error{
		inventorydb.CodeInsufficientStock:    inventorydb.ErrInsufficientStock,
		inventorydb.CodeUnknownProduct:       inventorydb.ErrUnknownProduct,
		inventorydb.CodeUnknownWarehouse:     inventorydb.ErrUnknownWarehouse,
		inventorydb.CodeUnknownReservation:   inventorydb.ErrUnknownReservation,
		inventorydb.CodeReservationNotActive: inventorydb.ErrReservationNotActive,
		inventorydb.CodeDuplicateReservation: inventorydb.ErrDuplicateReservation,
		inventorydb.CodeInvalidArgument:      inventorydb.ErrInvalidArgument,
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			before := f.snapshot(t)
			err := tc.do(t, f)
			if err == nil {
				t.Fatal("write succeeded, want a refusal")
			}
			if got := sqlState(err); got != tc.code {
				t.Errorf("SQLSTATE = %q, want %q (%v)", got, tc.code, err)
			}
			if !tc.raw && !errors.Is(err, sentinel[tc.code]) {
				t.Errorf("error %v does not match %v", err, sentinel[tc.code])
			}
			if got, want := inventorydb.IsInsufficientStock(err), tc.code == inventorydb.CodeInsufficientStock; got != want {
				t.Errorf("IsInsufficientStock = %v, want %v", got, want)
			}
			for _, m := range tc.message {
				if m == f0product {
					m = f.product
				}
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not mention %q", err, m)
				}
			}
			if after := f.snapshot(t); !before.equal(after) {
				t.Errorf("refused write changed rows:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// f0product in an expected message stands for the fixture's product id.
const f0product = "\x00product"

func TestTransferKeepsTheTotalUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2)
	f.receive(t, f.wh[0], 1000)
	f.receive(t, f.wh[1], 1000)

	// Opposite directions at once: a lock order that depended on the
	// direction would deadlock (SQLSTATE 40P01) here.
	const perDirection = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*perDirection)
	for _, dir := range [][2]string{{f.wh[0], f.wh[1]}, {f.wh[1], f.wh[0]}} {
		wg.Go(func() {
			for i := range perDirection {
				if _, _, err := inventorydb.Transfer(ctx, f.db, f.product, dir[0], dir[1], 3, fmt.Sprintf("t-%d", i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("transfer: %v", err)
	}
	rows := f.rows(t)
	if len(rows) != 2 {
		t.Fatalf("rows = %+v, want 2", rows)
	}
	if total := rows[0].OnHand + rows[1].OnHand; total != 2000 {
		t.Errorf("total on_hand = %d, want 2000 (%+v)", total, rows)
	}
	for _, r := range rows {
		if r.Version != 1+2*perDirection || r.Kind != "transfer" {
			t.Errorf("row %+v: want version %d, kind transfer", r, 1+2*perDirection)
		}
	}
}

func TestFirstWritesToAPairDoNotRace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1)
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			if _, err := inventorydb.Receive(ctx, f.db, f.product, f.wh[0], 1, fmt.Sprintf("po-%d", i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("receive: %v", err)
	}
	rows := f.rows(t)
	if len(rows) != 1 || rows[0].OnHand != writers || rows[0].Version != writers {
		t.Errorf("rows = %+v, want one row with on_hand %d at version %d", rows, writers, writers)
	}
}

func TestExpireSweepsOnlyDueReservations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2)
	f.receive(t, f.wh[0], 100)
	f.receive(t, f.wh[1], 100)
	reserve := func(label, wh string, qty int, ttl time.Duration) {
		t.Helper()
		if _, err := inventorydb.Reserve(ctx, f.db, inventorydb.ReserveRequest{
			ReservationID: f.id(t, label), ProductID: f.product, WarehouseID: wh, Quantity: qty, TTL: ttl,
		}); err != nil {
			t.Fatal(err)
		}
	}
	reserve("due1", f.wh[0], 2, time.Millisecond)
	reserve("due2", f.wh[0], 3, time.Millisecond)
	reserve("locked", f.wh[1], 4, time.Millisecond)
	reserve("released", f.wh[1], 5, time.Millisecond)
	reserve("later", f.wh[1], 6, time.Hour)
	if _, err := inventorydb.Release(ctx, f.db, f.ids["released"], ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)

	// A release or commit holding a due reservation is skipped, not waited for.
	holder, err := f.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck
	if _, err := holder.Exec(ctx, "SELECT 1 FROM stock_reservations WHERE reservation_id = $1 FOR UPDATE", f.ids["locked"]); err != nil {
		t.Fatal(err)
	}
	// The database is shared: a sweeper elsewhere (the simulator, another
	// package's tests) may expire some of ours or others' in parallel, so the
	// count is not ours to assert; the statuses and rows are.
	if _, err := inventorydb.Expire(ctx, f.db, time.Time{}, 1000); err != nil {
		t.Fatalf("expire: %v", err)
	}
	status := func(label string) string {
		t.Helper()
		r, err := inventorydb.LoadReservation(ctx, f.db, f.ids[label])
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	for label, want := range map[string]string{
		"due1": "expired", "due2": "expired", "locked": "active", "released": "released", "later": "active",
	} {
		if got := status(label); got != want {
			t.Errorf("%s: status %s, want %s", label, got, want)
		}
	}
	// Each expiry is its own write: two on wh[0], the last one stamped with
	// its reservation id.
	got := f.rows(t)
	if len(got) == 2 && (got[0].Ref == f.ids["due1"] || got[0].Ref == f.ids["due2"]) {
		got[0].Ref = "due"
	}
	want := []row{
		{f.wh[0], 100, 0, 1 + 2 + 2, "expire", "due"},
		{f.wh[1], 100, 4 + 6, 1 + 3 + 1, "release", f.ids["released"]},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows =\n  %+v\nwant\n  %+v", got, want)
	}

	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inventorydb.Expire(ctx, f.db, time.Time{}, 1000); err != nil {
		t.Fatalf("expire: %v", err)
	}
	if got := status("locked"); got != "expired" {
		t.Errorf("locked after unlock: status %s, want expired", got)
	}
	want[1] = row{f.wh[1], 100, 6, 1 + 3 + 1 + 1, "expire", f.ids["locked"]}
	if got := f.rows(t); !slices.Equal(got[1:], want[1:]) {
		t.Errorf("rows =\n  %+v\nwant\n  %+v", got, want)
	}
}
