package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/query-api/api"
)

// BenchmarkAPI serves real HTTP from a real Redis holding 1,000 products of
// 20 warehouses and reports requests per second, client and server on this
// machine.
func BenchmarkAPI(b *testing.B) {
	st, _ := storetest.New(b)
	ids := make([]string, 1000)
	snaps := make([]stockstore.Snapshot, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("SKU-%06d", i)
		s := snapshot(ids[i], 100, position.Position{LSN: 1, Index: uint32(i + 1)})
		for w := 1; w < 20; w++ {
			s.Warehouses = append(s.Warehouses, stockstore.Warehouse{WarehouseID: fmt.Sprintf("WH-%02d", w), OnHand: 5, Status: "IN_STOCK"})
		}
		snaps[i] = s
	}
	if _, err := st.Apply(context.Background(), snaps); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.NewServer(api.Deps{Store: st, Registerer: prometheus.NewRegistry()}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	bulk := func(n int) string { return ids2body(ids[:n]) }
	cases := []struct {
		name string
		req  func(i int) (*http.Request, error)
	}{
		{"get", func(i int) (*http.Request, error) {
			return http.NewRequest("GET", srv.URL+"/v1/stock/"+ids[i%len(ids)], nil)
		}},
		{"bulk=100", func(int) (*http.Request, error) {
			return http.NewRequest("POST", srv.URL+"/v1/stock/bulk", strings.NewReader(bulk(100)))
		}},
		{"bulk=1000", func(int) (*http.Request, error) {
			return http.NewRequest("POST", srv.URL+"/v1/stock/bulk", strings.NewReader(bulk(1000)))
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					req, _ := c.req(i)
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Fatalf("status %d", res.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func ids2body(ids []string) string {
	return `{"product_ids":["` + strings.Join(ids, `","`) + `"]}`
}
