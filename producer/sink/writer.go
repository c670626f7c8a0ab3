package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Writer writes records in Kafka transactions. One Writer per slot: its
// transactional id fences any previous instance, so a zombie producer can
// never commit after a new one started.
type Writer struct {
	cl              *kgo.Client
	checkpointTopic string
	slot            string
	inTx            bool
	errs            chan error
	// produceCtx bounds a Produce waiting for room in a full buffer;
	// Stop cancels it.
	produceCtx context.Context
	stop       context.CancelFunc
	// perTopic counts the open transaction's records, reported to
	// OnCommitted once it commits.
	perTopic map[string]int
	// OnCommitted, when set, is told how many records each topic received
	// in every committed transaction (checkpoints included).
	OnCommitted func(topic string, records int)
	// LastFlush and LastEndTxn are how long the last commit waited for
	// its records to be acknowledged and for the broker to end the
	// transaction.
	LastFlush, LastEndTxn time.Duration
}

// transactionTimeout is how long the broker lets a transaction stay open
// before it aborts it. A source transaction of millions of rows is one
// Kafka transaction and may take minutes to write; a short timeout would
// abort it every time and retry it forever. A killed producer's open
// transaction does not wait for this: the next instance fences it at once.
// It must not exceed the broker's transaction.max.timeout.ms (15 minutes by
// default).
const transactionTimeout = 10 * time.Minute

// retryBackoff starts at 2 ms and doubles up to a second.
func retryBackoff(tries int) time.Duration {
	return 2 * time.Millisecond << min(max(tries-1, 0), 9)
}

// CompressionNames are the batch codecs the writer knows, by the names
// the configuration gives them.
var CompressionNames = []string{"none", "snappy", "lz4", "zstd", "gzip"}

var compressions = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(),
	"zstd": kgo.ZstdCompression(), "gzip": kgo.GzipCompression(),
}

// Compression is the batch codec of a name in CompressionNames, false for
// another name.
func Compression(name string) (kgo.CompressionCodec, bool) {
	c, ok := compressions[name]
	return c, ok
}

// NewWriter creates the transactional client and fences previous instances
// by committing a boot marker, which also aborts whatever transaction a
// killed predecessor left open, so readers see a stable end right after.
func NewWriter(ctx context.Context, opts []kgo.Opt, transactionalID, checkpointTopic, slot string) (*Writer, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.TransactionalID(transactionalID),
		kgo.TransactionTimeout(transactionTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		// A batch's worth (--batch-max-records' default): the parts of a
		// large source transaction wait for the broker here, not in memory
		// (docs/producer.md, "Memory").
		kgo.MaxBufferedRecords(20_000),
		// Transactions follow each other within milliseconds, and the
		// broker answers CONCURRENT_TRANSACTIONS until it wrote the previous
		// one's markers (a millisecond or two here). The client's defaults
		// wait 20 ms (transactional requests) and 250 ms (a produce
		// retried for it, with transaction version 2), which were the
		// commit-to-Kafka tail.
		kgo.ConcurrentTransactionsBackoff(time.Millisecond),
		kgo.RetryBackoffFn(retryBackoff),
		// One produce request in flight per broker. With more, a
		// transaction's first batch to a partition that the broker sends
		// back (CONCURRENT_TRANSACTIONS while the previous transaction's
		// markers are written) is overtaken by the next ones, which the
		// broker then refuses as out of sequence ("expected sequence 0 for
		// transactions v2 ... with no existing state"); seen in the broker's
		// log inside a 2 s flush. Records wait in the client meanwhile and
		// go out together in the next request, so little is lost.
		kgo.MaxProduceRequestsInflightPerBroker(1),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating transactional client: %w", err)
	}
	w := &Writer{cl: cl, checkpointTopic: checkpointTopic, slot: slot, errs: make(chan error, 1), perTopic: make(map[string]int)}
	w.produceCtx, w.stop = context.WithCancel(context.Background())
	if err := w.Begin(); err != nil {
		cl.Close()
		return nil, err
	}
	w.Produce(&kgo.Record{Topic: checkpointTopic, Key: []byte(slot + ".boot"), Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))})
	if err := w.commit(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("fencing previous producer: %w", err)
	}
	return w, nil
}

// Begin opens a transaction.
func (w *Writer) Begin() error {
	if w.inTx {
		return nil
	}
	if err := w.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("beginning kafka transaction: %w", err)
	}
	w.inTx = true
	clear(w.perTopic)
	return nil
}

// Produce buffers a record in the open transaction; a failure surfaces at
// Commit. It blocks when the client's buffer is full, which bounds memory
// for huge source transactions, until there is room or Stop is called.
func (w *Writer) Produce(r *kgo.Record) {
	w.perTopic[r.Topic]++
	w.cl.Produce(w.produceCtx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			select {
			case w.errs <- err:
			default:
			}
		}
	})
}

// Commit writes the checkpoint and commits the transaction: after it
// returns nil, every record produced since Begin and the checkpoint are
// durable and visible to read_committed consumers. A checkpoint without
// WrittenAt is stamped now; a caller that must know the checkpoint exactly
// as Kafka holds it (the state store records it) sets it.
func (w *Writer) Commit(ctx context.Context, cp Checkpoint) error {
	cp.Slot = w.slot
	if cp.WrittenAt.IsZero() {
		cp.WrittenAt = time.Now().UTC()
	}
	b, err := cp.encode()
	if err != nil {
		return err
	}
	w.Produce(&kgo.Record{Topic: w.checkpointTopic, Key: []byte(w.slot), Value: b})
	return w.commit(ctx)
}

func (w *Writer) commit(ctx context.Context) error {
	start := time.Now()
	flushErr := w.cl.Flush(ctx)
	w.LastFlush = time.Since(start)
	var produceErr error
	select {
	case produceErr = <-w.errs:
	default:
	}
	if flushErr == nil && produceErr == nil && w.produceCtx.Err() != nil {
		// A Produce that Stop released reports its error on a goroutine
		// of the client, maybe after Flush returned: never commit then.
		produceErr = fmt.Errorf("writer stopped: %w", w.produceCtx.Err())
	}
	if err := errors.Join(flushErr, produceErr); err != nil {
		w.abort(ctx)
		return fmt.Errorf("flushing kafka transaction: %w", err)
	}
	w.inTx = false
	start = time.Now()
	err := w.cl.EndTransaction(ctx, kgo.TryCommit)
	w.LastEndTxn = time.Since(start)
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_ = w.cl.EndTransaction(actx, kgo.TryAbort)
		return fmt.Errorf("committing kafka transaction: %w", err)
	}
	if w.OnCommitted != nil {
		for topic, n := range w.perTopic {
			w.OnCommitted(topic, n)
		}
	}
	return nil
}

// abortTimeout bounds an abort: aborting runs after a failure or during
// shutdown, when the caller's context may be gone, and must never hang the
// process (a killed transaction is aborted by the broker or fenced by the
// next instance anyway).
const abortTimeout = 10 * time.Second

func (w *Writer) abort(ctx context.Context) {
	w.inTx = false
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = w.cl.AbortBufferedRecords(actx)
	_ = w.cl.EndTransaction(actx, kgo.TryAbort)
}

// Stop makes a Produce blocked on a full buffer (Kafka unreachable) return
// without buffering its record; the open transaction, and any later one,
// can then only fail to commit. For a shutdown that must not wait for
// Kafka for ever.
func (w *Writer) Stop() { w.stop() }

// Close aborts an open transaction and closes the client.
func (w *Writer) Close(ctx context.Context) {
	defer w.stop()
	if w.inTx {
		w.abort(ctx)
	}
	w.cl.Close()
}
