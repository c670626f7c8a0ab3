package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstatus"
	"github.com/stockpipe/stock/internal/stockstore"
)

const (
	headerAPIKey = "X-API-Key"
	// headerView tells which numbers the answer holds: "exact", or
	// "public" (quantities capped at the number given as "public; cap=50").
	headerView = "X-Stock-View"
)

// view is how documents are shown to one request: exact or capped, all
// warehouses or some.
type view struct {
	cap int64 // 0: exact quantities
	// warehouses restricts rows and totals to these warehouses; nil: all.
	warehouses map[string]struct{}
}

// tag distinguishes the ETags of answers that differ only by view.
func (v view) tag() string {
	if v.cap > 0 {
		return "p" + strconv.FormatInt(v.cap, 10)
	}
	return "x"
}

func (v view) identity() bool { return v.cap == 0 && v.warehouses == nil }

// viewOf decides the view of a request from its API key header: a missing
// key gets the public view (when one is configured), a listed key exact
// numbers, an unlisted key 401 (silently capping would let a client with a
// mistyped key believe capped numbers are exact).
func (s *server) viewOf(c echo.Context) (view, error) {
	key := c.Request().Header.Get(headerAPIKey)
	if key == "" {
		return view{cap: max(s.PublicCap, 0)}, nil
	}
	for _, k := range s.apiKeys {
		if subtle.ConstantTimeCompare([]byte(key), k) == 1 {
			return view{}, nil
		}
	}
	return view{}, newError(http.StatusUnauthorized, codeInvalidAPIKey, nil, "the %s header holds no valid key", headerAPIKey)
}

// apply returns doc as v shows it. The identity view returns doc itself:
// the common case writes the stored bytes without decoding them.
func (v view) apply(doc json.RawMessage) (json.RawMessage, error) {
	if v.identity() {
		return doc, nil
	}
	var p stockstore.Product
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("decoding stored document: %w", err)
	}
	v.applyProduct(&p)
	return json.Marshal(p)
}

func (v view) applyProduct(p *stockstore.Product) {
	if v.warehouses != nil {
		rows := p.Warehouses[:0:0]
		var threshold int64
		p.OnHand, p.Reserved, p.Available = 0, 0, 0
		for _, w := range p.Warehouses {
			if _, ok := v.warehouses[w.WarehouseID]; !ok {
				continue
			}
			rows = append(rows, w)
			p.OnHand += w.OnHand
			p.Reserved += w.Reserved
			p.Available += w.Available
			threshold += w.LowStockThreshold
		}
		// The product rule of the contract, over the kept rows: the total's
		// threshold is the sum of its warehouses' thresholds.
		p.Status = stockstatus.Of(p.Available, threshold)
		p.Warehouses = rows
	}
	if v.cap > 0 {
		p.OnHand, p.Reserved, p.Available = min(p.OnHand, v.cap), min(p.Reserved, v.cap), min(p.Available, v.cap)
		for i := range p.Warehouses {
			w := &p.Warehouses[i]
			w.OnHand, w.Reserved, w.Available = min(w.OnHand, v.cap), min(w.Reserved, v.cap), min(w.Available, v.cap)
		}
	}
}

// docPosition returns the "position" value of a stored document without
// decoding it: the encoder writes position then commit_time last.
func docPosition(doc []byte) []byte {
	const key = `"position":"`
	i := bytes.LastIndex(doc, []byte(key))
	if i < 0 {
		return nil
	}
	rest := doc[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

// etag builds an entity tag from what decides an answer: the view, the
// request's shape and each product's position. Positions only move forward,
// so an unchanged tag means unchanged documents.
type etag struct{ h hash.Hash64 }

func newETag(v view, parts ...string) *etag {
	e := &etag{h: fnv.New64a()}
	e.add(v.tag())
	if v.warehouses != nil {
		ids := slices.Sorted(maps.Keys(v.warehouses))
		e.add("w:" + strings.Join(ids, ","))
	}
	for _, p := range parts {
		e.add(p)
	}
	return e
}

func (e *etag) add(s string) {
	e.h.Write([]byte(s))
	e.h.Write([]byte{0})
}

func (e *etag) addBytes(b []byte) {
	e.h.Write(b)
	e.h.Write([]byte{0})
}

func (e *etag) String() string { return `"` + strconv.FormatUint(e.h.Sum64(), 36) + `"` }

// notModified reports whether the request's If-None-Match matches tag
// (weak comparison, as RFC 9110 wants for If-None-Match).
func notModified(r *http.Request, tag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}

// writeStock writes a stock answer with its freshness and caching headers,
// or 304 when the client holds it already.
func (s *server) writeStock(c echo.Context, v view, tag string, body []byte) error {
	h := c.Response().Header()
	h.Set("ETag", tag)
	s.setCaching(c, v)
	s.setFreshness(c)
	if notModified(c.Request(), tag) {
		// The bulk POST is a read too: it answers 304 like a GET rather
		// than the 412 RFC 9110 asks of state-changing methods, which would
		// tell a reader nothing.
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

func (s *server) setCaching(c echo.Context, v view) {
	h := c.Response().Header()
	scope := "public"
	if v.cap == 0 && c.Request().Header.Get(headerAPIKey) != "" {
		scope = "private" // exact numbers are for the key holder only
	}
	if s.CacheMaxAge > 0 {
		h.Set("Cache-Control", scope+", max-age="+strconv.Itoa(int(s.CacheMaxAge.Seconds())))
	} else {
		h.Set("Cache-Control", scope+", no-cache")
	}
	if s.PublicCap > 0 {
		h.Set("Vary", headerAPIKey)
		if v.cap > 0 {
			h.Set(headerView, "public; cap="+strconv.FormatInt(v.cap, 10))
		} else {
			h.Set(headerView, "exact")
		}
	}
}
