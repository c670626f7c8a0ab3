package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstatus"
	"github.com/stockpipe/stock/internal/stockstore"
)

const (
	headerAPIKey = "X-API-Key"
	// keyAPIKey is headerAPIKey as Go canonicalises header names: looked up
	// with it, the name is not converted on every request.
	keyAPIKey = "X-Api-Key"
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
	key := c.Request().Header.Get(keyAPIKey)
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
// decoding it: the encoder writes position then commit_time last, so the
// key is looked for from the end.
func docPosition(doc []byte) []byte {
	const key = `"position":"`
	i := lastIndex(doc, key)
	if i < 0 {
		return nil
	}
	rest := doc[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

// lastIndex is bytes.LastIndex(doc, key) for keys of two bytes or more,
// jumping from one occurrence of key's second byte to the one before
// (bytes.LastIndexByte is vectorised). For the position key that byte is
// 'p', and the first 'p' from a document's end is the key's. bytes.LastIndex
// hashes every byte it passes (Rabin-Karp): it took a tenth of a bulk read
// of 1,000 products.
func lastIndex(doc []byte, key string) int {
	for end := len(doc); ; {
		i := bytes.LastIndexByte(doc[:end], key[1])
		if i < 1 {
			return -1
		}
		if bytes.HasPrefix(doc[i-1:], []byte(key)) {
			return i - 1
		}
		end = i
	}
}

// etag builds an entity tag from what decides an answer: the view, the
// request's shape and each product's position. Positions only move forward,
// so an unchanged tag means unchanged documents. The hash is 64-bit FNV-1a
// of the parts, each followed by a zero byte, computed inline: hash/fnv's
// interface allocated on every request.
type etag struct{ h uint64 }

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func newETag(v view, parts ...string) *etag {
	e := &etag{h: fnvOffset64}
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
	h := e.h
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime64
	}
	e.h = h * fnvPrime64 // the zero byte: h ^ 0 == h
}

func (e *etag) addBytes(b []byte) {
	h := e.h
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime64
	}
	e.h = h * fnvPrime64
}

func (e *etag) String() string { return `"` + strconv.FormatUint(e.h, 36) + `"` }

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
// or 304 when the client holds it already. body is written before it
// returns: the caller may reuse it.
func (s *server) writeStock(c echo.Context, v view, tag string, body []byte) error {
	h := c.Response().Header()
	h.Set("Etag", tag)
	s.setCaching(c, v)
	s.setFreshness(c)
	if notModified(c.Request(), tag) {
		// The bulk POST is a read too: it answers 304 like a GET rather
		// than the 412 RFC 9110 asks of state-changing methods, which would
		// tell a reader nothing.
		return c.NoContent(http.StatusNotModified)
	}
	// With the length known net/http sends the body as is, not chunked.
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// cacheControl holds the Cache-Control values of stock answers, built once.
type cacheControl struct{ public, private string }

func newCacheControl(maxAge time.Duration) cacheControl {
	if maxAge > 0 {
		age := ", max-age=" + strconv.Itoa(int(maxAge.Seconds()))
		return cacheControl{public: "public" + age, private: "private" + age}
	}
	return cacheControl{public: "public, no-cache", private: "private, no-cache"}
}

func (s *server) setCaching(c echo.Context, v view) {
	h := c.Response().Header()
	cc := s.cacheControl.public
	if v.cap == 0 && c.Request().Header.Get(keyAPIKey) != "" {
		cc = s.cacheControl.private // exact numbers are for the key holder only
	}
	h.Set("Cache-Control", cc)
	if s.PublicCap > 0 {
		h.Set("Vary", headerAPIKey)
		if v.cap > 0 {
			h.Set(headerView, "public; cap="+strconv.FormatInt(v.cap, 10))
		} else {
			h.Set(headerView, "exact")
		}
	}
}
