package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
)

// What the stream handler does per touched product per source transaction:
// remember the product's statuses before, build its new level, compare.
func BenchmarkTouchedProduct(b *testing.B) {
	rows := make([]change.Row, 20)
	for i := range rows {
		rows[i] = row("P", fmt.Sprintf("WH-%02d", i+1), 100, 10, 5, 20)
	}
	after := append([]change.Row(nil), rows...)
	after[3].OnHand = 30 // crosses into LOW_STOCK
	pos := position.Position{LSN: 1}
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		before := touchedBefore(rows)
		next := Level("P", after, pos, 1, at, false)
		if len(Alerts(before, next)) != 1 {
			b.Fatal("want one alert")
		}
	}
}

func touchedBefore(rows []change.Row) *Statuses { return StatusesOf(rows) }
