package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

func (s *server) addSyncRoutes(e *echo.Echo) {
	e.GET("/v1/stock/changes", s.changes)
	e.GET("/v1/stock/changes/head", s.changesHead)
	e.GET("/v1/warehouses/:warehouse_id/low-stock", s.lowStock)
}

// limitParam reads ?limit=, 1 to MaxPageSize, DefaultPageSize when absent.
// A present but empty limit is refused like any other non-number.
func (s *server) limitParam(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if _, given := c.QueryParams()["limit"]; !given {
		return s.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > s.MaxPageSize {
		return 0, newError(http.StatusUnprocessableEntity, codeInvalidParameter,
			map[string]any{"parameter": "limit", "min": 1, "max": s.MaxPageSize},
			"limit must be a whole number from 1 to %d", s.MaxPageSize)
	}
	return n, nil
}

// cursorPattern is the form of the change cursors the store hands out: a
// generation and one apply sequence, or one per bucket of the Cluster
// layout (stockstore.ClusterBuckets, 16). openapi.json states the same
// pattern, so that a client (or a generator) can tell a cursor the API
// refuses (422) from one it no longer holds (410); a test keeps the two in
// step.
const cursorPattern = `[0-9]{1,18}:[0-9]{1,18}((\.[0-9]{1,18}){15})?`

// changeCursorRE is a cursor parameter: empty (from the oldest retained
// change) or a cursor.
var changeCursorRE = regexp.MustCompile(`^(` + cursorPattern + `)?$`)

func invalidCursor() *apiError {
	return newError(http.StatusUnprocessableEntity, codeInvalidParameter, map[string]any{"parameter": "cursor"},
		"cursor is not one this API handed out; start without one or from /v1/stock/changes/head")
}

// changeEntry is one product's latest change: its document, or null when
// the product is deleted.
type changeEntry struct {
	ProductID string          `json:"product_id"`
	Position  string          `json:"position"`
	Deleted   bool            `json:"deleted"`
	Product   json.RawMessage `json:"product"`
}

type changesBody struct {
	Changes []changeEntry `json:"changes"`
	// NextCursor is the cursor of the next call; it equals the request's
	// when nothing changed since.
	NextCursor string `json:"next_cursor"`
}

// changes is incremental sync: the products changed after a cursor, each
// once at its latest state, deletions included. A client calls it until it
// gets fewer than limit changes, then again later with the last cursor.
func (s *server) changes(c echo.Context) error {
	if err := onlyParams(c, "cursor", "limit"); err != nil {
		return err
	}
	limit, err := s.limitParam(c)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if !changeCursorRE.MatchString(cursor) {
		return invalidCursor()
	}
	v, err := s.viewOf(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	changes, next, err := s.Store.Changes(ctx, cursor, limit)
	switch {
	case errors.Is(err, stockstore.ErrCursorExpired), errors.Is(err, stockstore.ErrBadCursor):
		// Well formed but not continuable here: another generation, or the
		// other layout's (a single node's cursor on a Cluster): resync.
		return s.cursorExpired(c, cursor)
	case err != nil:
		return unavailable(err)
	}
	live := make([]string, 0, len(changes))
	for _, ch := range changes {
		if !ch.Deleted {
			live = append(live, ch.ProductID)
		}
	}
	docs, err := s.Store.GetManyJSON(ctx, live)
	if err != nil {
		return unavailable(err)
	}
	body := changesBody{Changes: make([]changeEntry, 0, len(changes)), NextCursor: next}
	tag := newETag(v, "changes", cursor, next)
	nextLive := 0 // docs[i] is live[i]'s: the changes not deleted, in order
	for _, ch := range changes {
		e := changeEntry{ProductID: ch.ProductID, Position: ch.Position.String(), Deleted: ch.Deleted, Product: json.RawMessage("null")}
		if !ch.Deleted {
			d := docs[nextLive]
			nextLive++
			if d == nil {
				e.Deleted = true // deleted between the two reads
			} else {
				tag.addBytes(docPosition(d))
				if e.Product, err = v.apply(d); err != nil {
					return err
				}
			}
		}
		tag.add(e.Position)
		body.Changes = append(body.Changes, e)
	}
	return s.writeStock(c, v, tag.String(), body.encode())
}

// encode writes the body by hand around the stored documents: encoding/json
// would validate and compact every json.RawMessage again, which made a page
// of 100 cost several times the Redis reads behind it.
func (b *changesBody) encode() []byte {
	size := 64
	for _, e := range b.Changes {
		size += len(e.Product) + len(e.ProductID) + 80
	}
	out := make([]byte, 0, size)
	out = append(out, `{"changes":[`...)
	for i, e := range b.Changes {
		if i > 0 {
			out = append(out, ',')
		}
		id, _ := json.Marshal(e.ProductID) // a string always encodes
		out = append(out, `{"product_id":`...)
		out = append(out, id...)
		out = append(out, `,"position":"`...)
		out = append(out, e.Position...) // hex digits, '/' and ':' only
		out = append(out, `","deleted":`...)
		out = strconv.AppendBool(out, e.Deleted)
		out = append(out, `,"product":`...)
		out = append(out, e.Product...)
		out = append(out, '}')
	}
	next, _ := json.Marshal(b.NextCursor)
	out = append(out, `],"next_cursor":`...)
	out = append(out, next...)
	return append(out, '}')
}

// cursorExpired answers 410 with what a client needs to start again: the
// head cursor, read now, so that reading its products in full and then
// following changes from there misses nothing.
func (s *server) cursorExpired(c echo.Context, cursor string) error {
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	head, err := s.Store.ChangesHead(ctx)
	if err != nil {
		return unavailable(err)
	}
	return newError(http.StatusGone, codeCursorExpired, map[string]any{
		"cursor": cursor,
		"resync": map[string]string{
			"cursor": head,
			"how":    "read the products you track in full (POST /v1/stock/bulk), then follow /v1/stock/changes from this cursor",
		},
	}, "the cursor is older than the retained change window (or from a replaced cache generation); resync in full")
}

func (s *server) changesHead(c echo.Context) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	head, err := s.Store.ChangesHead(ctx)
	if err != nil {
		return unavailable(err)
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	s.setFreshness(c)
	return c.JSON(http.StatusOK, map[string]string{"cursor": head})
}

type lowStockBody struct {
	WarehouseID string         `json:"warehouse_id"`
	Products    []warehouseRow `json:"products"`
	// NextCursor is null on the last page.
	NextCursor *string `json:"next_cursor"`
}

// lowStock pages through the products whose row in a warehouse is
// LOW_STOCK or OUT_OF_STOCK, by product id.
func (s *server) lowStock(c echo.Context) error {
	wh := pathParam(c, "warehouse_id")
	if !validID(wh) {
		return invalidWarehouseID(wh)
	}
	if err := onlyParams(c, "cursor", "limit"); err != nil {
		return err
	}
	limit, err := s.limitParam(c)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" && !validID(cursor) {
		return invalidCursor()
	}
	v, err := s.viewOf(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	ids, next, err := s.Store.LowStock(ctx, wh, cursor, limit)
	if err != nil {
		return unavailable(err)
	}
	docs, err := s.Store.GetManyJSON(ctx, ids)
	if err != nil {
		return unavailable(err)
	}
	body := lowStockBody{WarehouseID: wh, Products: make([]warehouseRow, 0, len(docs))}
	if next != "" {
		body.NextCursor = &next
	}
	tag := newETag(v, "low", wh, cursor, next)
	for _, d := range docs {
		if d == nil {
			continue // deleted since the set was read
		}
		tag.addBytes(docPosition(d))
		row, ok, err := rowOf(d, wh, v)
		if err != nil {
			return err
		}
		// The set and the document are read apart: a product restocked in
		// between is left out rather than shown as low.
		if ok && row.Status != stockstore.StatusLowStock && row.Status != stockstore.StatusOutOfStock {
			ok = false
		}
		if ok {
			body.Products = append(body.Products, row)
		}
	}
	return s.writeJSON(c, v, tag.String(), body)
}
