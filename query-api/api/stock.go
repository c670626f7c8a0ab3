package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

const maxIDLen = 128

// validID reports whether id is a product id the API accepts: 1 to 128
// characters of [A-Za-z0-9._:-]. Checking here keeps odd bytes out of Redis
// keys and logs.
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

func invalidID(id string) *apiError {
	shown := id
	if len(shown) > maxIDLen {
		shown = shown[:maxIDLen] + "..."
	}
	return newError(http.StatusBadRequest, codeInvalidProductID, map[string]any{"product_id": shown},
		"product ids are 1 to %d characters of A-Z a-z 0-9 . _ : -", maxIDLen)
}

func (s *server) getStock(c echo.Context) error {
	id := c.Param("product_id")
	if !validID(id) {
		return invalidID(id)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.StoreTimeout)
	defer cancel()
	doc, err := s.Store.GetJSON(ctx, id)
	switch {
	case errors.Is(err, stockstore.ErrNotFound):
		return newError(http.StatusNotFound, codeNotFound, map[string]any{"product_id": id}, "product %q not found", id)
	case err != nil:
		return unavailable(err)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc)
}

type bulkRequest struct {
	ProductIDs []string `json:"product_ids"`
}

func (s *server) bulkStock(c echo.Context) error {
	var req bulkRequest
	if err := s.decodeBody(c, &req); err != nil {
		return err
	}
	switch n := len(req.ProductIDs); {
	case n == 0:
		return newError(http.StatusBadRequest, codeBadRequest, nil, "product_ids must hold 1 to %d ids", s.MaxBulkIDs)
	case n > s.MaxBulkIDs:
		return newError(http.StatusBadRequest, codeTooManyIDs, map[string]any{"max": s.MaxBulkIDs, "got": n},
			"at most %d product ids per request, got %d", s.MaxBulkIDs, n)
	}
	// Fold duplicates, keeping the first occurrence's place.
	ids := make([]string, 0, len(req.ProductIDs))
	seen := make(map[string]struct{}, len(req.ProductIDs))
	for _, id := range req.ProductIDs {
		if !validID(id) {
			return invalidID(id)
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.StoreTimeout)
	defer cancel()
	docs, notFound, err := s.Store.GetManyJSON(ctx, ids)
	if err != nil {
		return unavailable(err)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, bulkBody(docs, notFound))
}

// bulkBody writes {"products": [...], "not_found": [...]} around the stored
// documents without decoding them.
func bulkBody(docs []json.RawMessage, notFound []string) []byte {
	size := 40
	for _, d := range docs {
		size += len(d) + 1
	}
	var b bytes.Buffer
	b.Grow(size + len(notFound)*16)
	b.WriteString(`{"products":[`)
	for i, d := range docs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(d)
	}
	b.WriteString(`],"not_found":`)
	if notFound == nil {
		notFound = []string{}
	}
	nf, _ := json.Marshal(notFound) // []string always encodes
	b.Write(nf)
	b.WriteByte('}')
	return b.Bytes()
}

// decodeBody reads one JSON object of at most MaxBodyBytes into v, refusing
// unknown fields and trailing data.
func (s *server) decodeBody(c echo.Context, v any) error {
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
		return newError(http.StatusRequestEntityTooLarge, codeTooLarge, map[string]any{"max_bytes": tooBig.Limit},
			"request body larger than %d bytes", tooBig.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return newError(http.StatusBadRequest, codeUnknownField, map[string]any{"field": field}, "unknown field %q", field)
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

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether this instance can answer: Redis reachable.
// TODO(issue 5): also fail when the projection lags more than a configured
// bound (stockstore.Watermarks has what it needs).
func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.StoreTimeout)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		e := unavailable(err)
		e.Message = "not ready: redis unreachable"
		e.Details = map[string]any{"checks": map[string]string{"redis": "unreachable"}}
		return e
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": map[string]string{"redis": "ok"}})
}
