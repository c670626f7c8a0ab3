package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Checkpoint is what the producer has durably written to Kafka, stored in the
// checkpoint topic in the same Kafka transaction as the records it covers.
type Checkpoint struct {
	Slot string `json:"slot"`
	// CommitLSN is the commit LSN of the last source transaction written;
	// transactions committed at or before it are already in Kafka.
	CommitLSN uint64 `json:"commit_lsn"`
	// EndLSN is that transaction's end LSN, safe to confirm to PostgreSQL.
	EndLSN uint64 `json:"end_lsn"`
	// SnapshotDone is false while the initial snapshot is being written; a
	// restart then takes a new snapshot.
	SnapshotDone bool `json:"snapshot_done"`
	// SnapshotLSN is the consistent point of the slot's snapshot.
	SnapshotLSN uint64    `json:"snapshot_lsn"`
	WrittenAt   time.Time `json:"written_at"`
}

func (c Checkpoint) encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding checkpoint: %w", err)
	}
	return b, nil
}

func decodeCheckpoint(b []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(b) > 64<<10 {
		return c, fmt.Errorf("decoding checkpoint: %d bytes, far more than a checkpoint", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("decoding checkpoint: %w", err)
	}
	return c, nil
}
