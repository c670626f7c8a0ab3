package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/testenv"
)

// The readiness case of a large snapshot on a quiet source: the projection
// applies the snapshot later than the query API's --max-lag after its commit
// (here the projector is held back until it is), then nothing is written.
// No partition will ever see a younger batch, yet the API must say ready as
// soon as the projector has caught up, and stay ready after one write.
// Before partitions were marked caught up, it stayed "projection lagging"
// for good.
func TestReadyOnceCaughtUpAfterALateSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	const maxLag = 2 * time.Second
	conn := db(t, 200, 20)
	p := startPipelineWith(t, conn, pipelineOpts{api: []string{"--max-lag", maxLag.String()}, holdProjector: true})

	p.producer.waitLog(t, `"snapshot written"`, time.Minute)
	snapshotDone := time.Now()
	// Resume the projector only once the snapshot is older than the bound,
	// so every batch it applies is late.
	time.Sleep(maxLag + time.Second)
	p.projector.resume()
	seeded := waitFor(t, p.api, "SKU-000042", func(product) bool { return true })
	if late := time.Since(seeded.CommitTime); late <= maxLag {
		t.Fatalf("the snapshot reached the API %s after its commit, want later than --max-lag %s (snapshot written %s ago)",
			late, maxLag, time.Since(snapshotDone))
	}

	waitReady(t, p.api, "ready once caught up after the late snapshot, with no write since")

	exec1(t, conn, `SELECT stock_adjust('SKU-000042', 'WH-01', 5, 'e2e', 'e2e-ready')`)
	waitFor(t, p.api, "SKU-000042", func(got product) bool { return got.Position != seeded.Position })
	waitReady(t, p.api, "ready after one write")
}

// waitReady waits up to 30 s for /readyz to answer 200.
func waitReady(t *testing.T, api, what string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, func() string {
		resp, err := http.Get(api + "/readyz")
		if err != nil {
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status + " " + string(body)
		}
		return ""
	})
}
