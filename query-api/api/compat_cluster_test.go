package api_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/query-api/api"
)

// On a Redis Cluster the change index is one per bucket (16): since is
// mapped per bucket, and pages run bucket after bucket, by number or by
// token, each product once.
func TestRecentlyUpdatedOnRedisCluster(t *testing.T) {
	rdb, _ := storetest.Cluster(t)
	st := storetest.NewOn(t, rdb)
	if _, _, err := st.InitGeneration(t.Context()); err != nil {
		t.Fatal(err)
	}
	base := commitTime.Add(time.Hour)
	var snaps []stockstore.Snapshot
	var want []string
	for i := range 60 {
		id := fmt.Sprintf("C%02d", i)
		snaps = append(snaps, at(id, 0x100+uint64(i), base.Add(time.Duration(i)*time.Minute)))
		if i >= 28 { // since = base+30m less the 2-minute margin
			want = append(want, id)
		}
	}
	if _, err := st.Apply(t.Context(), snaps); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := api.NewServer(api.Deps{Store: st, Registerer: reg, Gatherer: reg})
	for _, byToken := range []bool{false, true} {
		got := pageAll(t, h, base.Add(30*time.Minute), 7, byToken, nil)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("by token %v: %v\nwant %v", byToken, got, want)
		}
	}
	// A token pins the snapshot on a Cluster too: a product changed after
	// page 1 is in the run only if it was answered before it changed (it
	// moves past the snapshot's head), nothing else of the snapshot is
	// lost, nothing comes twice, and the next run has the changes.
	got := pageAll(t, h, base.Add(30*time.Minute), 7, true, func(page int) {
		if page == 1 {
			if _, err := st.Apply(t.Context(), []stockstore.Snapshot{at("C59", 0x9000, base.Add(2*time.Hour)),
				at("NEW", 0x9001, base.Add(2*time.Hour))}); err != nil {
				t.Fatal(err)
			}
		}
	})
	slices.Sort(got)
	if !slices.Equal(got, want) && !slices.Equal(got, want[:len(want)-1]) {
		t.Errorf("with changes meanwhile: %v\nwant %v (C59 optional)", got, want)
	}
	next := pageAll(t, h, base.Add(30*time.Minute), 7, true, nil)
	if !slices.Contains(next, "C59") || !slices.Contains(next, "NEW") {
		t.Errorf("next run lacks the changes: %v", next)
	}
}
