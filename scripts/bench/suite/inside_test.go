package suite

import "testing"

func TestProducerInsideCountsSlowTransactions(t *testing.T) {
	before := map[string]float64{txnBucket("0.1"): 10, txnBucket("0.25"): 10, txnBucket("0.5"): 10, txnBucket("1"): 10,
		txnBucket("2.5"): 10, txnBucket("5"): 10, txnBucket("10"): 10, txnBucket("+Inf"): 10, metadataRetries: 3}
	after := map[string]float64{txnBucket("0.1"): 105, txnBucket("0.25"): 108, txnBucket("0.5"): 108, txnBucket("1"): 109,
		txnBucket("2.5"): 110, txnBucket("5"): 110, txnBucket("10"): 110, txnBucket("+Inf"): 110, metadataRetries: 7}
	// 100 transactions in the phase: 95 under 100 ms, 3 under 250 ms, one
	// under 1 s, one under 2.5 s.
	in := producerInside(before, after, 10)
	if in.KafkaTxnsOver100ms != 5 || in.KafkaTxnsOver250ms != 2 || in.SlowestKafkaTxnLeS != 2.5 || in.MetadataRetries != 4 {
		t.Fatalf("got %+v", in)
	}
	if got := in.SlowTxns(); got != "5/2/≤2500ms/4" {
		t.Fatalf("SlowTxns = %q", got)
	}
}
