package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
)

// Handler receives the stream, one committed transaction at a time, in
// commit order. Calls come from the Stream's goroutine only.
type Handler interface {
	// Change is one row change of tx; tx carries Xid, CommitLSN and
	// CommitTime only (EndLSN is known at Commit).
	Change(ctx context.Context, tx *change.Tx, c change.Change) error
	// Commit ends tx. The handler calls Stream.Ack once everything up to
	// tx.EndLSN is durable downstream.
	Commit(ctx context.Context, tx change.Tx) error
	// Signal is a transactional logical decoding message with a prefix the
	// producer acts on (change.SignalResnapshot), inside tx.
	Signal(ctx context.Context, tx *change.Tx, s change.Signal) error
	// Idle is called when no message arrived within the idle interval, so a
	// handler can flush what it batched.
	Idle(ctx context.Context) error
}

// StreamConfig tunes the receive loop.
type StreamConfig struct {
	Slot        string
	Publication string
	// StatusInterval is how often standby status (the acked LSN) is sent.
	StatusInterval time.Duration
	// IdleInterval bounds how long the loop waits for a message before it
	// calls Handler.Idle; it is the producer's batching linger.
	IdleInterval time.Duration
	// Limited makes the stream confirm no further than SetConfirmLimit
	// allows: the slot ledger records an LSN before PostgreSQL hears it.
	Limited bool
}

// Stream is the pgoutput receive loop of one slot.
type Stream struct {
	cfg    StreamConfig
	conn   *pgconn.PgConn
	log    *slog.Logger
	acked  atomic.Uint64
	limit  atomic.Uint64 // with cfg.Limited: the most a status may confirm
	recvd  atomic.Uint64
	sent   uint64    // last LSN confirmed by a standby status
	sentAt time.Time // when it was sent
	decode map[uint32]*rowDecoder
	// relations outside the publication are never sent; unknown ids are an error.
}

// NewStream wraps a replication connection.
func NewStream(conn *pgconn.PgConn, cfg StreamConfig, log *slog.Logger) *Stream {
	return &Stream{cfg: cfg, conn: conn, log: log, decode: make(map[uint32]*rowDecoder)}
}

// Ack records that everything up to lsn is durable downstream; the next
// standby status confirms it to PostgreSQL. Safe from any goroutine.
func (s *Stream) Ack(lsn uint64) { raise(&s.acked, lsn) }

// raise sets a to v if v is greater, from any goroutine.
func raise(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// SetConfirmLimit allows statuses to confirm up to lsn (with
// StreamConfig.Limited). Safe from any goroutine.
func (s *Stream) SetConfirmLimit(lsn uint64) { raise(&s.limit, lsn) }

// confirmable is what the next status confirms.
func (s *Stream) confirmable() uint64 {
	if s.cfg.Limited {
		return min(s.acked.Load(), s.limit.Load())
	}
	return s.acked.Load()
}

// Acked is the last LSN confirmed durable downstream.
func (s *Stream) Acked() uint64 { return s.acked.Load() }

// Received is the server's WAL end as last reported to the stream.
func (s *Stream) Received() uint64 { return s.recvd.Load() }

// Run starts replication at start (0 lets the server resume from the slot's
// confirmed position) and feeds h until ctx ends or an error occurs.
func (s *Stream) Run(ctx context.Context, start uint64, h Handler) error {
	s.Ack(start)
	err := pglogrepl.StartReplication(ctx, s.conn, s.cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{
			"proto_version '1'",
			fmt.Sprintf("publication_names '%s'", s.cfg.Publication),
			// Transactional logical messages carry the heartbeat, so an idle
			// database still yields commits whose LSN we can confirm.
			"messages 'true'",
		},
	})
	if err != nil {
		return fmt.Errorf("starting replication on slot %s: %w", s.cfg.Slot, err)
	}
	s.log.Info("replication started", "slot", s.cfg.Slot, "start_lsn", pglogrepl.LSN(start).String())

	r := &receiver{s: s, h: h}
	nextStatus := time.Now().Add(s.cfg.StatusInterval)
	// The wait for a message is bounded by the connection's read deadline,
	// not by a context per message: a context with a deadline for every
	// ReceiveMessage, and pgx's watch of it, were an eighth of what a
	// backlog's drain allocated. The deadline is set again once it passed or
	// when a status is due sooner, so a busy stream also times out every
	// IdleInterval; Idle then offers the batch in hand, as the linger would.
	var readBy time.Time
	// Whatever uses the connection next waits as long as it asks to.
	defer func() { _ = s.conn.Conn().SetReadDeadline(time.Time{}) }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Confirm soon after a batch is acked, not only on the interval, so
		// the slot releases WAL promptly; at most every 50 ms.
		if acked := s.confirmable(); acked != s.sent && time.Since(s.sentAt) >= 50*time.Millisecond {
			nextStatus = time.Time{}
		}
		now := time.Now()
		if now.After(nextStatus) {
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
			now = time.Now()
			nextStatus = now.Add(s.cfg.StatusInterval)
			readBy = time.Time{} // a cancelled write clears the deadline
		}
		if !readBy.After(now) || nextStatus.Before(readBy) {
			readBy = now.Add(s.cfg.IdleInterval)
			if nextStatus.Before(readBy) {
				readBy = nextStatus
			}
			if err := s.conn.Conn().SetReadDeadline(readBy); err != nil {
				return fmt.Errorf("receiving from slot %s: %w", s.cfg.Slot, err)
			}
		}
		raw, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				readBy = time.Time{}
				if err := h.Idle(ctx); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("receiving from slot %s: %w", s.cfg.Slot, err)
		}
		replyNow, err := r.handle(ctx, raw)
		if err != nil {
			return err
		}
		if replyNow {
			nextStatus = time.Time{}
		}
	}
}

// receiver is what one Run keeps between messages: the handler it feeds
// and the transaction being received. Its handle methods take one message
// kind each.
type receiver struct {
	s     *Stream
	h     Handler
	tx    change.Tx
	inTx  bool
	index uint32 // of the last change or signal in tx
}

// handle takes one message from the server; replyNow says the server asked
// for a standby status at once.
func (r *receiver) handle(ctx context.Context, raw pgproto3.BackendMessage) (replyNow bool, err error) {
	switch msg := raw.(type) {
	case *pgproto3.ErrorResponse:
		return false, fmt.Errorf("replication error on slot %s: %w", r.s.cfg.Slot, pgconn.ErrorResponseToPgError(msg))
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return false, nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			return r.handleKeepalive(msg.Data[1:])
		case pglogrepl.XLogDataByteID:
			return false, r.handleXLogData(ctx, msg.Data[1:])
		}
	}
	return false, nil
}

func (r *receiver) handleKeepalive(data []byte) (replyNow bool, err error) {
	ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data)
	if err != nil {
		return false, fmt.Errorf("parsing keepalive: %w", err)
	}
	r.s.recvd.Store(uint64(ka.ServerWALEnd))
	return ka.ReplyRequested, nil
}

func (r *receiver) handleXLogData(ctx context.Context, data []byte) error {
	xld, err := pglogrepl.ParseXLogData(data)
	if err != nil {
		return fmt.Errorf("parsing xlog data: %w", err)
	}
	if end := uint64(xld.ServerWALEnd); end > r.s.recvd.Load() {
		r.s.recvd.Store(end)
	}
	m, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("parsing pgoutput message at %s: %w", xld.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		return r.handleRelation(m)
	case *pglogrepl.BeginMessage:
		r.handleBegin(m)
	case *pglogrepl.CommitMessage:
		return r.handleCommit(ctx, m)
	case *pglogrepl.LogicalDecodingMessage:
		return r.handleLogicalMessage(ctx, m)
	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		return r.handleRowChange(ctx, m)
	}
	return nil
}

// handleRelation learns the captured table's columns; other relations are
// not in the publication, and their changes never come.
func (r *receiver) handleRelation(m *pglogrepl.RelationMessage) error {
	if m.Namespace != "public" || m.RelationName != Table {
		return nil
	}
	d, err := newRowDecoder(m)
	if err != nil {
		return err
	}
	r.s.decode[m.RelationID] = d
	return nil
}

func (r *receiver) handleBegin(m *pglogrepl.BeginMessage) {
	r.tx = change.Tx{Xid: m.Xid, CommitLSN: uint64(m.FinalLSN), CommitTime: m.CommitTime.UTC()}
	r.inTx, r.index = true, 0
}

func (r *receiver) handleCommit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	if !r.inTx {
		return errors.New("commit without begin in replication stream")
	}
	r.tx.CommitLSN = uint64(m.CommitLSN)
	r.tx.EndLSN = uint64(m.TransactionEndLSN)
	r.inTx = false
	return r.h.Commit(ctx, r.tx)
}

// handleLogicalMessage passes on the signals the producer acts on; the
// heartbeats and foreign messages are only there to move the LSN.
func (r *receiver) handleLogicalMessage(ctx context.Context, m *pglogrepl.LogicalDecodingMessage) error {
	if !r.inTx || !m.Transactional || m.Prefix != change.SignalResnapshot {
		return nil
	}
	r.index++
	sig := change.Signal{Prefix: m.Prefix, Content: m.Content, Position: position.Position{LSN: r.tx.CommitLSN, Index: r.index}}
	return r.h.Signal(ctx, &r.tx, sig)
}

func (r *receiver) handleRowChange(ctx context.Context, m pglogrepl.Message) error {
	r.index++
	c, ok, err := r.s.toChange(m)
	if err != nil {
		return fmt.Errorf("decoding change %d of xid %d: %w", r.index, r.tx.Xid, err)
	}
	if !ok {
		return nil
	}
	c.Position = position.Position{LSN: r.tx.CommitLSN, Index: r.index}
	return r.h.Change(ctx, &r.tx, c)
}

func (s *Stream) decoder(relID uint32) (*rowDecoder, bool) {
	d, ok := s.decode[relID]
	return d, ok
}

// toChange converts a pgoutput row message; ok is false for relations other
// than the captured table (possible only if the publication changes).
func (s *Stream) toChange(m pglogrepl.Message) (change.Change, bool, error) {
	switch m := m.(type) {
	case *pglogrepl.InsertMessage:
		d, ok := s.decoder(m.RelationID)
		if !ok {
			return change.Change{}, false, nil
		}
		r, err := d.row(m.Tuple)
		if err != nil {
			return change.Change{}, false, err
		}
		return change.Change{Op: change.OpInsert, Key: change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, After: r}, true, nil
	case *pglogrepl.UpdateMessage:
		d, ok := s.decoder(m.RelationID)
		if !ok {
			return change.Change{}, false, nil
		}
		r, err := d.row(m.NewTuple)
		if err != nil {
			return change.Change{}, false, err
		}
		c := change.Change{Op: change.OpUpdate, Key: change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, After: r}
		// An old tuple is sent only when the key changed (replica identity
		// default); the row then moved to a new key.
		if m.OldTuple != nil {
			k, err := d.key(m.OldTuple)
			if err != nil {
				return change.Change{}, false, err
			}
			if k != c.Key {
				c.OldKey = &k
			}
		}
		return c, true, nil
	case *pglogrepl.DeleteMessage:
		d, ok := s.decoder(m.RelationID)
		if !ok {
			return change.Change{}, false, nil
		}
		if m.OldTuple == nil {
			return change.Change{}, false, errors.New("delete without old key")
		}
		k, err := d.key(m.OldTuple)
		if err != nil {
			return change.Change{}, false, err
		}
		return change.Change{Op: change.OpDelete, Key: k}, true, nil
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if _, ok := s.decoder(id); ok {
				return change.Change{Op: change.OpTruncate}, true, nil
			}
		}
		return change.Change{}, false, nil
	}
	return change.Change{}, false, nil
}

func (s *Stream) sendStatus(ctx context.Context) error {
	lsn := pglogrepl.LSN(s.confirmable())
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn,
		WALFlushPosition: lsn,
		WALApplyPosition: lsn,
		ClientTime:       time.Now(),
	})
	if err != nil {
		return fmt.Errorf("sending standby status at LSN %s: %w", lsn, err)
	}
	s.sent, s.sentAt = uint64(lsn), time.Now()
	return nil
}

// SendStatus confirms the acked LSN now, for a graceful shutdown.
func (s *Stream) SendStatus(ctx context.Context) error { return s.sendStatus(ctx) }
