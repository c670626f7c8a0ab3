package simulate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
)

// Kinds of calls, as stamped in last_change_kind.
const (
	kindReceive  = inventorydb.KindReceive
	kindAdjust   = inventorydb.KindAdjust
	kindCount    = inventorydb.KindCount
	kindTransfer = inventorydb.KindTransfer
	kindReserve  = inventorydb.KindReserve
	kindRelease  = inventorydb.KindRelease
	kindCommit   = inventorydb.KindCommit
	kindExpire   = inventorydb.KindExpire
)

var kinds = []string{kindReserve, kindCommit, kindRelease, kindExpire, kindReceive, kindAdjust, kindCount, kindTransfer}

// Write is one successful write call, as Config.OnWrite hears of it: what
// the write function stamped on the rows it changed, so a listener can find
// the change downstream (the benchmark matches it in Kafka and Redis).
type Write struct {
	Kind      string // last_change_kind
	Ref       string // last_change_ref; with Kind it names the change
	ProductID string
	// At is when the call's transaction had committed, as the caller saw it.
	At time.Time
}

// ref is a reservation id or change ref unique across runs: the run id and a
// per-run sequence number.
func (s *Simulator) ref(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, s.runID, s.seq.Add(1))
}

// call is one write call drawn from the mix: the inventory rows it will lock
// (so that a grouped transaction can order its calls by them) and how to
// make it. run records the
// outcome and returns the writes that succeeded.
type call struct {
	product    string
	warehouses []string
	run        func(ctx context.Context, q inventorydb.Querier) []Write
}

// step makes one write call in a transaction of its own.
func (s *Simulator) step(ctx context.Context, rng *rand.Rand, zipf *rand.Zipf) {
	c := s.draw(rng, zipf)
	s.emit(c.run(ctx, s.db), time.Now())
}

// draw picks the next call: a reservation whose hold is over first, else a
// new call drawn from the mix. In steady state about as many reservations
// end as start, so the calls split roughly (measured): 40% reserve, 30%
// commit or release, 9% receive, 8% transfer, 6% adjust, 5% count, plus the
// sweeper every second.
func (s *Simulator) draw(rng *rand.Rand, zipf *rand.Zipf) call {
	if h, ok := s.pending.popDue(time.Now()); ok {
		return call{product: h.product, warehouses: []string{h.warehouse},
			run: func(ctx context.Context, q inventorydb.Querier) []Write { return s.resolve(ctx, q, h) }}
	}
	product := inventorydb.ProductID(s.hot[zipf.Uint64()] + 1)
	wh := rng.IntN(s.cfg.Warehouses) + 1
	warehouse := inventorydb.WarehouseID(wh)
	c := call{product: product, warehouses: []string{warehouse}}
	switch roll := rng.IntN(100); {
	case roll < 60:
		c.run = func(ctx context.Context, q inventorydb.Querier) []Write {
			return s.reserve(ctx, q, rng, product, warehouse)
		}
	case roll < 72:
		// Rebalancing: to another warehouse, drawn from the other W-1.
		to := inventorydb.WarehouseID((wh+rng.IntN(s.cfg.Warehouses-1))%s.cfg.Warehouses + 1)
		qty, ref := 1+rng.IntN(20), s.ref("xfer")
		c.warehouses = append(c.warehouses, to)
		c.run = func(ctx context.Context, q inventorydb.Querier) []Write {
			err := guarded(ctx, q, func(q inventorydb.Querier) error {
				_, _, err := inventorydb.Transfer(ctx, q, product, warehouse, to, qty, ref)
				return err
			})
			return s.done(kindTransfer, ref, product, err)
		}
	case roll < 84:
		qty, ref := 20+rng.IntN(101), s.ref("po")
		c.run = func(ctx context.Context, q inventorydb.Querier) []Write {
			err := guarded(ctx, q, func(q inventorydb.Querier) error {
				_, err := inventorydb.Receive(ctx, q, product, warehouse, qty, ref)
				return err
			})
			return s.done(kindReceive, ref, product, err)
		}
	case roll < 93:
		delta, reason := -1-rng.IntN(5), shrinkReasons[rng.IntN(len(shrinkReasons))]
		if rng.IntN(5) == 0 {
			delta, reason = 1+rng.IntN(5), "found"
		}
		ref := s.ref("adj")
		c.run = func(ctx context.Context, q inventorydb.Querier) []Write {
			err := guarded(ctx, q, func(q inventorydb.Querier) error {
				_, err := inventorydb.Adjust(ctx, q, product, warehouse, delta, reason, ref)
				return err
			})
			return s.done(kindAdjust, ref, product, err)
		}
	default:
		c.run = func(ctx context.Context, q inventorydb.Querier) []Write {
			return s.count(ctx, q, rng, product, warehouse)
		}
	}
	return c
}

var shrinkReasons = []string{"damaged", "lost", "expired_goods", "theft"}

// done records a call's outcome and returns it as a write if it succeeded.
func (s *Simulator) done(kind, ref, product string, err error) []Write {
	s.stats.record(kind, err)
	if err != nil || s.cfg.OnWrite == nil {
		return nil
	}
	return []Write{{Kind: kind, Ref: ref, ProductID: product}}
}

// emit tells OnWrite of writes whose transaction has committed.
func (s *Simulator) emit(ws []Write, at time.Time) {
	for _, w := range ws {
		w.At = at
		s.cfg.OnWrite(w)
	}
}

func (s *Simulator) reserve(ctx context.Context, q inventorydb.Querier, rng *rand.Rand, product, warehouse string) []Write {
	qty := 1 + rng.IntN(3)
	if rng.IntN(5) == 0 {
		qty = 1 + rng.IntN(10)
	}
	abandon := rng.IntN(20) == 0
	ttl := s.cfg.ReservationTTL
	if abandon {
		ttl = 5*time.Second + time.Duration(rng.Int64N(int64(25*time.Second)))
	}
	id := s.ref("res")
	backorder := rng.IntN(20) == 0
	err := guarded(ctx, q, func(q inventorydb.Querier) error {
		_, err := inventorydb.Reserve(ctx, q, inventorydb.ReserveRequest{
			ReservationID: id, ProductID: product, WarehouseID: warehouse, Quantity: qty,
			TTL: ttl, AllowBackorder: backorder,
		})
		return err
	})
	out := s.done(kindReserve, id, product, err)
	if err != nil || abandon {
		return out // an abandoned cart is left to the expiry sweeper
	}
	held := 200*time.Millisecond + time.Duration(rng.Int64N(int64(max(s.cfg.HoldMax-200*time.Millisecond, 1))))
	s.pending.push(hold{id: id, product: product, warehouse: warehouse,
		due: time.Now().Add(held), commit: rng.IntN(4) != 0})
	return out
}

// resolve ends a held reservation: shipped, or released when the order is
// cancelled or there is no longer enough on hand to ship it.
func (s *Simulator) resolve(ctx context.Context, q inventorydb.Querier, h hold) []Write {
	if h.commit {
		ref := s.ref("ship")
		err := guarded(ctx, q, func(q inventorydb.Querier) error {
			_, err := inventorydb.Commit(ctx, q, h.id, ref)
			return err
		})
		out := s.done(kindCommit, ref, h.product, err)
		if !inventorydb.IsInsufficientStock(err) {
			return out
		}
	}
	// Without a ref of its own, a release is stamped with the reservation id.
	err := guarded(ctx, q, func(q inventorydb.Querier) error {
		_, err := inventorydb.Release(ctx, q, h.id, "")
		return err
	})
	return s.done(kindRelease, h.id, h.product, err)
}

// count is a stock take: what was on the shelf, give or take a miscount.
func (s *Simulator) count(ctx context.Context, q inventorydb.Querier, rng *rand.Rand, product, warehouse string) []Write {
	ref := s.ref("cnt")
	miscount, fallback := rng.IntN(3) == 0, rng.IntN(20)
	drift := rng.IntN(4) - 2
	err := guarded(ctx, q, func(q inventorydb.Querier) error {
		counted := fallback
		l, err := inventorydb.LoadLevel(ctx, q, product, warehouse)
		switch {
		case err == nil:
			counted = l.OnHand
			if miscount {
				counted = max(0, counted+drift)
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = inventorydb.Count(ctx, q, product, warehouse, counted, ref)
		return err
	})
	return s.done(kindCount, ref, product, err)
}

// guarded runs one write call. Inside a grouped transaction it runs under a
// savepoint, so that a refusal undoes that call only and the transaction
// goes on, as a warehouse service batching its writes would do it.
func guarded(ctx context.Context, q inventorydb.Querier, f func(inventorydb.Querier) error) error {
	tx, ok := q.(pgx.Tx)
	if !ok {
		return f(q)
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("starting savepoint: %w", err)
	}
	if err := f(sp); err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return errors.Join(err, fmt.Errorf("rolling back to savepoint: %w", rerr))
		}
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("releasing savepoint: %w", err)
	}
	return nil
}

// group makes calls in one source transaction.
func (s *Simulator) group(ctx context.Context, calls []call) {
	// Row locks in (product, warehouse) order, the order every write
	// function and the expiry sweeper take them in, so grouped transactions
	// on hot products wait for each other instead of deadlocking. A
	// transfer locks its two rows lowest warehouse first, so it sorts by
	// that one: every lock a group takes is then at or after the ones it
	// holds.
	slices.SortFunc(calls, func(a, b call) int {
		return cmp.Or(cmp.Compare(a.product, b.product), cmp.Compare(slices.Min(a.warehouses), slices.Min(b.warehouses)))
	})
	tx, err := s.beginner.Begin(ctx)
	if err != nil {
		s.stats.failTx(fmt.Errorf("beginning grouped transaction: %w", err))
		return
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	var writes []Write
	for _, c := range calls {
		writes = append(writes, c.run(ctx, tx)...)
	}
	if err := tx.Commit(ctx); err != nil {
		s.stats.failTx(fmt.Errorf("committing grouped transaction: %w", err))
		return
	}
	s.stats.addTx()
	s.emit(writes, time.Now())
}
