package simulate

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/stockpipe/stock/internal/inventorydb"
)

// Counts are the outcomes of one kind of call. For expire, OK counts
// reservations expired, not sweeps.
type Counts struct {
	OK      int64 `json:"ok"`
	Refused int64 `json:"refused"` // the database said no: not enough stock, reservation no longer active
	Failed  int64 `json:"failed"`  // anything else
}

type stats struct {
	mu      sync.Mutex
	by      map[string]Counts
	behindN int64
	lastErr string
	txN     int64 // grouped transactions committed
	txFailN int64 // grouped transactions that failed as a whole
}

// record counts one call's outcome. Refusals are the business saying no and
// expected under load; everything else is a failure, remembered for the log.
func (s *stats) record(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string]Counts{}
	}
	c := s.by[kind]
	switch {
	case err == nil:
		c.OK++
	case inventorydb.IsInsufficientStock(err), errors.Is(err, inventorydb.ErrReservationNotActive):
		c.Refused++
	default:
		c.Failed++
		s.lastErr = kind + ": " + err.Error()
	}
	s.by[kind] = c
}

func (s *stats) addOK(kind string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string]Counts{}
	}
	c := s.by[kind]
	c.OK += n
	s.by[kind] = c
}

// failTx counts a grouped transaction that failed as a whole (its calls
// were already counted one by one).
func (s *stats) failTx(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txFailN++
	s.lastErr = "grouped transaction: " + err.Error()
}

func (s *stats) addTx() {
	s.mu.Lock()
	s.txN++
	s.mu.Unlock()
}

func (s *stats) txs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txN
}

func (s *stats) txsFailed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txFailN
}

func (s *stats) addBehind() {
	s.mu.Lock()
	s.behindN++
	s.mu.Unlock()
}

func (s *stats) behind() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behindN
}

func (s *stats) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *stats) snapshot() map[string]Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Counts, len(kinds))
	for _, k := range kinds {
		out[k] = s.by[k]
	}
	return out
}

func diff(cur, prev map[string]Counts) map[string]Counts {
	out := make(map[string]Counts, len(cur))
	for k, c := range cur {
		p := prev[k]
		out[k] = Counts{OK: c.OK - p.OK, Refused: c.Refused - p.Refused, Failed: c.Failed - p.Failed}
	}
	return out
}

// countsAttr renders counts as {"by_kind": {"reserve": {"ok":..,"refused":..,"failed":..}, ...}}
// in a fixed kind order, so the log lines have a stable shape.
func countsAttr(by map[string]Counts) slog.Attr {
	groups := make([]any, 0, len(kinds))
	for _, k := range kinds {
		c := by[k]
		groups = append(groups, slog.Group(k, "ok", c.OK, "refused", c.Refused, "failed", c.Failed))
	}
	return slog.Group("by_kind", groups...)
}
