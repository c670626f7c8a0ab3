package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

// warehouseRow is one product's row in one warehouse, with the product's
// freshness (position and commit time are per product).
type warehouseRow struct {
	ProductID         string    `json:"product_id"`
	OnHand            int64     `json:"on_hand"`
	Reserved          int64     `json:"reserved"`
	Available         int64     `json:"available"`
	Status            string    `json:"status"`
	LowStockThreshold int64     `json:"low_stock_threshold"`
	Position          string    `json:"position"`
	CommitTime        time.Time `json:"commit_time"`
}

type warehouseStockBody struct {
	WarehouseID string         `json:"warehouse_id"`
	Products    []warehouseRow `json:"products"`
	// NotFound lists the requested products without a row in the
	// warehouse: unknown, deleted, or not stocked there.
	NotFound []string `json:"not_found"`
}

// rowOf returns the row of warehouse wh in doc as v shows it; ok is false
// when the product has no row there.
func rowOf(doc json.RawMessage, wh string, v view) (row warehouseRow, ok bool, err error) {
	var p stockstore.Product
	if err := json.Unmarshal(doc, &p); err != nil {
		return row, false, fmt.Errorf("decoding stored document: %w", err)
	}
	v.warehouses = nil // the row is shown whole; only the cap applies
	v.applyProduct(&p)
	for _, w := range p.Warehouses {
		if w.WarehouseID == wh {
			return warehouseRow{
				ProductID: p.ProductID, OnHand: w.OnHand, Reserved: w.Reserved, Available: w.Available,
				Status: w.Status, LowStockThreshold: w.LowStockThreshold,
				Position: p.Position, CommitTime: p.CommitTime.UTC(),
			}, true, nil
		}
	}
	return row, false, nil
}

// productIDsParam reads ?product_ids=a,b,c (the parameter may also repeat).
func productIDsParam(c echo.Context) []string {
	var ids []string
	for _, v := range c.QueryParams()["product_ids"] {
		for id := range strings.SplitSeq(v, ",") {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *server) warehouseStock(c echo.Context) error {
	wh := pathParam(c, "warehouse_id")
	if !validID(wh) {
		return invalidWarehouseID(wh)
	}
	if err := onlyParams(c, "product_ids"); err != nil {
		return err
	}
	ids, err := foldIDs(productIDsParam(c), s.MaxBulkIDs, "product_ids", invalidID)
	if err != nil {
		return err
	}
	v, err := s.viewOf(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	docs, err := s.Store.GetManyJSON(ctx, ids)
	if err != nil {
		return unavailable(err)
	}
	body := warehouseStockBody{WarehouseID: wh, Products: make([]warehouseRow, 0, len(ids)), NotFound: []string{}}
	tag := newETag(v, "warehouse", wh)
	for i, id := range ids {
		tag.add(id)
		d := docs[i]
		if d == nil {
			body.NotFound = append(body.NotFound, id)
			continue
		}
		tag.addBytes(docPosition(d))
		row, ok, err := rowOf(d, wh, v)
		switch {
		case err != nil:
			return err
		case ok:
			body.Products = append(body.Products, row)
		default:
			body.NotFound = append(body.NotFound, id)
		}
	}
	return s.writeJSON(c, v, tag.String(), body)
}

// writeJSON is json.Marshal then writeStock.
func (s *server) writeJSON(c echo.Context, v view, tag string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return s.writeStock(c, v, tag, b)
}
