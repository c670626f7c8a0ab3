package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

// The replaced stock system's routes, which its clients (the catalog
// service first) still call: served from the same documents as the v1
// routes, in the old shapes. Their numbers are the old system's "available
// stock", on_hand - reserved, not the v1 routes' available, which also
// holds back safety stock. docs/api.md, "Routes of the replaced system".

func (s *server) addCompatRoutes(e *echo.Echo) {
	e.POST("/v1/batch/stock", s.batchStock)
	e.POST("/v1/inventory/recently-updated", s.recentlyUpdated)
	e.GET("/v1/inventory/product/:product_id", s.inventoryProduct)
}

// inventoryWarehouse is one warehouse row in the old shape.
type inventoryWarehouse struct {
	WarehouseID string `json:"warehouse_id"`
	OnHand      int64  `json:"on_hand"`
	Reserved    int64  `json:"reserved"`
	// Available is on_hand - reserved; negative when oversold, which is
	// never hidden.
	Available int64 `json:"available"`
}

// inventoryProduct is a product in the old shape: its warehouse rows (all,
// or the one asked for) and their totals.
type inventoryProduct struct {
	ProductID      string               `json:"product_id"`
	Warehouses     []inventoryWarehouse `json:"warehouses"`
	TotalOnHand    int64                `json:"total_on_hand"`
	TotalReserved  int64                `json:"total_reserved"`
	TotalAvailable int64                `json:"total_available"`
	// UpdatedAt is the source commit time of the product's latest change;
	// null for a deleted product (the cache keeps only the deletion's
	// position).
	UpdatedAt *time.Time `json:"updated_at"`
}

// inventoryOf converts a stored document: rows of warehouse wh only when wh
// is not "", quantities capped as view v caps them. The cap applies to the
// exact difference, not to a difference of capped numbers.
func inventoryOf(doc json.RawMessage, wh string, v view) (inventoryProduct, error) {
	var p stockstore.Product
	if err := json.Unmarshal(doc, &p); err != nil {
		return inventoryProduct{}, fmt.Errorf("decoding stored document: %w", err)
	}
	at := p.CommitTime.UTC()
	out := inventoryProduct{ProductID: p.ProductID, Warehouses: make([]inventoryWarehouse, 0, len(p.Warehouses)), UpdatedAt: &at}
	for _, w := range p.Warehouses {
		if wh != "" && w.WarehouseID != wh {
			continue
		}
		out.TotalOnHand += w.OnHand
		out.TotalReserved += w.Reserved
		out.TotalAvailable += w.OnHand - w.Reserved
		out.Warehouses = append(out.Warehouses, inventoryWarehouse{
			WarehouseID: w.WarehouseID,
			OnHand:      capped(w.OnHand, v), Reserved: capped(w.Reserved, v), Available: capped(w.OnHand-w.Reserved, v),
		})
	}
	out.TotalOnHand, out.TotalReserved, out.TotalAvailable = capped(out.TotalOnHand, v), capped(out.TotalReserved, v), capped(out.TotalAvailable, v)
	return out, nil
}

func capped(n int64, v view) int64 {
	if v.cap > 0 {
		return min(n, v.cap)
	}
	return n
}

// optionalWarehouse validates an optional warehouse id: nil (absent or
// JSON null) means every warehouse.
func optionalWarehouse(wh *string) (string, error) {
	if wh == nil {
		return "", nil
	}
	if !validID(*wh) {
		return "", invalidWarehouseID(*wh)
	}
	return *wh, nil
}

type batchStockRequest struct {
	ProductIDs  []string `json:"product_ids"`
	WarehouseID *string  `json:"warehouse_id"`
}

// batchStock answers {"stocks": {id: on_hand - reserved}}, summed over the
// warehouses or of the one asked for. Every requested id is a key: an
// unknown or deleted product, or one without a row in the warehouse, is 0,
// as the old system answered and as its clients index the map. The shape is
// kept exactly (no extra fields: a strict client decoder would refuse
// them); POST /v1/stock/bulk tells unknown from zero.
func (s *server) batchStock(c echo.Context) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	var req batchStockRequest
	if err := s.decodeBody(c, &req); err != nil {
		return err
	}
	ids, err := foldIDs(req.ProductIDs, s.MaxBulkIDs, "product_ids", invalidID)
	if err != nil {
		return err
	}
	wh, err := optionalWarehouse(req.WarehouseID)
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
	body := struct {
		Stocks map[string]int64 `json:"stocks"`
	}{make(map[string]int64, len(ids))}
	tag := newETag(v, "batch", wh)
	for i, id := range ids {
		tag.add(id)
		body.Stocks[id] = 0
		if d := docs[i]; d != nil {
			tag.addBytes(docPosition(d))
			p, err := inventoryOf(d, wh, v)
			if err != nil {
				return err
			}
			body.Stocks[id] = p.TotalAvailable
		}
	}
	return s.writeJSON(c, v, tag.String(), body)
}

// inventoryProduct answers one product in the old shape; 404 when the
// cache does not hold it (never seen or deleted).
func (s *server) inventoryProduct(c echo.Context) error {
	id, doc, v, err := s.oneProduct(c)
	if err != nil {
		return err
	}
	p, err := inventoryOf(doc, "", v)
	if err != nil {
		return err
	}
	tag := newETag(v, "inventory", id)
	tag.addBytes(docPosition(doc))
	return s.writeJSON(c, v, tag.String(), p)
}
