package simulate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// ref is a reservation id or change ref unique across runs: the run id and a
// per-run sequence number.
func (s *Simulator) ref(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, s.runID, s.seq.Add(1))
}

// step makes one write call: a reservation whose hold is over first, else a
// new call drawn from the mix. In steady state about as many reservations
// end as start, so the calls split roughly (measured): 40% reserve, 30%
// commit or release, 9% receive, 8% transfer, 6% adjust, 5% count, plus the
// sweeper every second.
func (s *Simulator) step(ctx context.Context, rng *rand.Rand, zipf *rand.Zipf) {
	if h, ok := s.pending.popDue(time.Now()); ok {
		s.resolve(ctx, h)
		return
	}
	product := inventorydb.ProductID(s.hot[zipf.Uint64()] + 1)
	wh := rng.IntN(s.cfg.Warehouses) + 1
	warehouse := inventorydb.WarehouseID(wh)
	switch roll := rng.IntN(100); {
	case roll < 60:
		s.reserve(ctx, rng, product, warehouse)
	case roll < 72:
		// Rebalancing: to another warehouse, drawn from the other W-1.
		to := inventorydb.WarehouseID((wh+rng.IntN(s.cfg.Warehouses-1))%s.cfg.Warehouses + 1)
		_, _, err := inventorydb.Transfer(ctx, s.db, product, warehouse, to, 1+rng.IntN(20), s.ref("xfer"))
		s.stats.record(kindTransfer, err)
	case roll < 84:
		_, err := inventorydb.Receive(ctx, s.db, product, warehouse, 20+rng.IntN(101), s.ref("po"))
		s.stats.record(kindReceive, err)
	case roll < 93:
		delta, reason := -1-rng.IntN(5), shrinkReasons[rng.IntN(len(shrinkReasons))]
		if rng.IntN(5) == 0 {
			delta, reason = 1+rng.IntN(5), "found"
		}
		_, err := inventorydb.Adjust(ctx, s.db, product, warehouse, delta, reason, s.ref("adj"))
		s.stats.record(kindAdjust, err)
	default:
		s.count(ctx, rng, product, warehouse)
	}
}

var shrinkReasons = []string{"damaged", "lost", "expired_goods", "theft"}

func (s *Simulator) reserve(ctx context.Context, rng *rand.Rand, product, warehouse string) {
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
	_, err := inventorydb.Reserve(ctx, s.db, inventorydb.ReserveRequest{
		ReservationID: id, ProductID: product, WarehouseID: warehouse, Quantity: qty,
		TTL: ttl, AllowBackorder: rng.IntN(20) == 0,
	})
	s.stats.record(kindReserve, err)
	if err != nil || abandon {
		return // an abandoned cart is left to the expiry sweeper
	}
	held := 200*time.Millisecond + time.Duration(rng.Int64N(int64(max(s.cfg.HoldMax-200*time.Millisecond, 1))))
	s.pending.push(hold{id: id, due: time.Now().Add(held), commit: rng.IntN(4) != 0})
}

// resolve ends a held reservation: shipped, or released when the order is
// cancelled or there is no longer enough on hand to ship it.
func (s *Simulator) resolve(ctx context.Context, h hold) {
	if h.commit {
		_, err := inventorydb.Commit(ctx, s.db, h.id, s.ref("ship"))
		s.stats.record(kindCommit, err)
		if !inventorydb.IsInsufficientStock(err) {
			return
		}
	}
	_, err := inventorydb.Release(ctx, s.db, h.id, "")
	s.stats.record(kindRelease, err)
}

// count is a stock take: what was on the shelf, give or take a miscount.
func (s *Simulator) count(ctx context.Context, rng *rand.Rand, product, warehouse string) {
	counted := rng.IntN(20)
	l, err := inventorydb.LoadLevel(ctx, s.db, product, warehouse)
	switch {
	case err == nil:
		counted = l.OnHand
		if rng.IntN(3) == 0 {
			counted = max(0, counted+rng.IntN(4)-2)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		s.stats.record(kindCount, err)
		return
	}
	_, err = inventorydb.Count(ctx, s.db, product, warehouse, counted, s.ref("cnt"))
	s.stats.record(kindCount, err)
}
