package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

const maxIDLen = 128

// validID reports whether id is a product or warehouse id the API accepts:
// 1 to 128 characters of [A-Za-z0-9._:-]. Checking here keeps odd bytes out
// of Redis keys and logs.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9',
			b == '.', b == '_', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

func shownID(id string) string {
	if len(id) > maxIDLen {
		return id[:maxIDLen] + "..."
	}
	return id
}

func invalidID(id string) *apiError {
	return newError(http.StatusBadRequest, codeInvalidProductID, map[string]any{"product_id": shownID(id)},
		"product ids are 1 to %d characters of A-Z a-z 0-9 . _ : -", maxIDLen)
}

func invalidWarehouseID(id string) *apiError {
	return newError(http.StatusBadRequest, codeInvalidWarehouseID, map[string]any{"warehouse_id": shownID(id)},
		"warehouse ids are 1 to %d characters of A-Z a-z 0-9 . _ : -", maxIDLen)
}

// foldIDs validates ids and folds duplicates, keeping the first
// occurrence's place.
func foldIDs(list []string, max int, field string, invalid func(string) *apiError) ([]string, error) {
	switch n := len(list); {
	case n == 0:
		return nil, newError(http.StatusBadRequest, codeBadRequest, map[string]any{"field": field},
			"%s must hold 1 to %d ids", field, max)
	case n > max:
		return nil, newError(http.StatusBadRequest, codeTooManyIDs, map[string]any{"field": field, "max": max, "got": n},
			"at most %d %s per request, got %d", max, field, n)
	}
	ids := make([]string, 0, len(list))
	seen := make(map[string]struct{}, len(list))
	for _, id := range list {
		if !validID(id) {
			return nil, invalid(id)
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// onlyParams refuses query parameters a route does not know: a typo such
// as ?limt=5 silently ignored would look like a server bug.
func onlyParams(c echo.Context, known ...string) error {
	if c.Request().URL.RawQuery == "" {
		return nil // the common case, without parsing
	}
	for name := range c.QueryParams() {
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			return newError(http.StatusBadRequest, codeUnknownField, map[string]any{"parameter": shownID(name)},
				"unknown query parameter %q", shownID(name))
		}
	}
	return nil
}

// pathParam is a path parameter, unescaped: echo leaves it as sent when
// the request's path holds escapes (a client may send ':' as %3A).
func pathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if strings.IndexByte(v, '%') < 0 {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v // refused by the id check
}

func (s *server) storeCtx(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), s.StoreTimeout)
}

// oneProduct reads the document of the route's product_id for the
// caller's view: 400 for a bad id or parameter, 404 when the cache does not
// hold it (never seen or deleted), 503 when Redis does not answer in time.
func (s *server) oneProduct(c echo.Context) (id string, doc json.RawMessage, v view, err error) {
	id = pathParam(c, "product_id")
	if !validID(id) {
		return "", nil, view{}, invalidID(id)
	}
	if err := onlyParams(c); err != nil {
		return "", nil, view{}, err
	}
	if v, err = s.viewOf(c); err != nil {
		return "", nil, view{}, err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	doc, err = s.reads.get(ctx, id)
	switch {
	case errors.Is(err, stockstore.ErrNotFound):
		return "", nil, view{}, newError(http.StatusNotFound, codeNotFound, map[string]any{"product_id": id}, "product %q not found", id)
	case err != nil:
		return "", nil, view{}, unavailable(err)
	}
	return id, doc, v, nil
}

func (s *server) getStock(c echo.Context) error {
	id, doc, v, err := s.oneProduct(c)
	if err != nil {
		return err
	}
	tag := newETag(v, "one", id)
	tag.addBytes(docPosition(doc))
	if doc, err = v.apply(doc); err != nil {
		return err
	}
	return s.writeStock(c, v, tag.String(), doc)
}

// maxBulkWarehouses bounds the warehouse filter of one request.
const maxBulkWarehouses = 1000

type bulkRequest struct {
	ProductIDs   []string `json:"product_ids"`
	WarehouseIDs []string `json:"warehouse_ids"`
}

func (s *server) bulkStock(c echo.Context) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	var req bulkRequest
	if err := s.decodeBody(c, &req); err != nil {
		return err
	}
	ids, err := foldIDs(req.ProductIDs, s.MaxBulkIDs, "product_ids", invalidID)
	if err != nil {
		return err
	}
	v, err := s.viewOf(c)
	if err != nil {
		return err
	}
	if req.WarehouseIDs != nil {
		// Present but empty is refused rather than read as "no
		// warehouses": omit the field for all of them.
		whs, err := foldIDs(req.WarehouseIDs, maxBulkWarehouses, "warehouse_ids", invalidWarehouseID)
		if err != nil {
			return err
		}
		v.warehouses = make(map[string]struct{}, len(whs))
		for _, w := range whs {
			v.warehouses[w] = struct{}{}
		}
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	docs, err := s.Store.GetManyJSON(ctx, ids)
	if err != nil {
		return unavailable(err)
	}
	tag := newETag(v, "bulk")
	var notFound []string
	for i, id := range ids {
		tag.add(id)
		if docs[i] == nil {
			notFound = append(notFound, id)
		}
	}
	// One pass over the documents: each is copied into the body and its
	// position hashed while it is in the CPU cache (two passes over 2 MB
	// missed the cache on the second).
	buf := getBuffer()
	defer putBuffer(buf)
	b := slices.Grow((*buf)[:0], bulkBodySize(docs, notFound))
	b = append(b, `{"products":[`...)
	first := true
	for _, d := range docs {
		if d == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		shown, err := v.apply(d)
		if err != nil {
			return err
		}
		b = append(b, shown...)
		tag.addBytes(docPosition(d))
	}
	b = append(b, `],"not_found":[`...)
	for i, id := range notFound {
		if i > 0 {
			b = append(b, ',')
		}
		// Ids are validated (A-Z a-z 0-9 . _ : -): nothing to escape.
		b = append(b, '"')
		b = append(b, id...)
		b = append(b, '"')
	}
	*buf = append(b, ']', '}')
	return s.writeStock(c, v, tag.String(), *buf)
}

// bulkBodySize is about the size of {"products": [...], "not_found":
// [...]} around docs (more when the view rewrites them).
func bulkBodySize(docs []json.RawMessage, notFound []string) int {
	size := 40
	for _, d := range docs {
		size += len(d) + 1
	}
	for _, id := range notFound {
		size += len(id) + 3
	}
	return size
}

// Bodies of bulk answers are built in pooled buffers: a bulk of 1,000
// products is about 2 MB, which allocated (and zeroed, and collected) per
// request cost more than copying the documents into it.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds the buffers kept: a rare huge answer (products of
// hundreds of warehouses) should not stay in memory for good.
const maxPooledBody = 8 << 20

func getBuffer() *[]byte { return bodyPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		bodyPool.Put(b)
	}
}

// decodeBody reads one JSON object of at most MaxBodyBytes into v, refusing
// unknown fields and trailing data.
func (s *server) decodeBody(c echo.Context, v any) error {
	if c.Request().ContentLength > s.MaxBodyBytes {
		return tooLarge(s.MaxBodyBytes)
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, s.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: anything after it is a client bug.
		if _, err = dec.Token(); err == io.EOF {
			return nil
		} else if err == nil {
			err = errors.New("data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(tooBig.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return newError(http.StatusBadRequest, codeUnknownField, map[string]any{"field": shownID(field)}, "unknown field %q", shownID(field))
	case errors.As(err, &syntax):
		return newError(http.StatusBadRequest, codeInvalidJSON, map[string]any{"offset": syntax.Offset}, "invalid JSON: %v", syntax)
	case errors.As(err, &typ):
		return newError(http.StatusBadRequest, codeInvalidJSON, map[string]any{"field": typ.Field},
			"field %q must be %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, codeInvalidJSON, nil, "request body is empty or cut short")
	}
	return newError(http.StatusBadRequest, codeInvalidJSON, nil, "invalid JSON: %v", err)
}

func tooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, codeTooLarge, map[string]any{"max_bytes": limit},
		"request body larger than %d bytes", limit)
}
