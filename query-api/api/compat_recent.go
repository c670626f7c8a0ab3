package api

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/stockstore"
)

// POST /v1/inventory/recently-updated: the replaced system's "changed since
// a time", mapped onto the change index (docs/api.md, "How
// recently-updated maps onto the change index"). A time cursor loses
// changes: one committed at the same instant as the last one seen, or
// committed earlier but applied later (partitions apply side by side,
// clocks drift). Here since only chooses where in the apply-ordered index
// to start, SinceMargin earlier, and everything applied after that point
// is answered, whatever its commit time.

// DefaultSinceMargin is how much earlier than since recently-updated starts
// reading: the most it assumes a change takes from its commit to the cache
// (projection lag plus clock differences). /readyz fails past 30 s of lag.
const DefaultSinceMargin = 2 * time.Minute

// maxRecentPage bounds page: offsets stay far from overflow, and no index
// of a million entries needs more pages of one.
const maxRecentPage = 1_000_000

// pageTokenPattern is the form of page tokens: the page they continue to
// (2 to maxRecentPage), the cursor after the last entry answered, and the
// snapshot's head (cursors as the change index hands them out).
// openapi.json states the same pattern; a test keeps the two in step.
const pageTokenPattern = `^([2-9]|[1-9][0-9]{1,5}|1000000)~` + cursorPattern + `~` + cursorPattern + `$`

var pageTokenRE = regexp.MustCompile(pageTokenPattern)

type recentRequest struct {
	Since       *string `json:"since"`
	WarehouseID *string `json:"warehouse_id"`
	// Page and Limit are read by hand: encoding/json refuses 1.0 and 1e2,
	// which JSON Schema counts as integers.
	Page      json.RawMessage `json:"page"`
	Limit     json.RawMessage `json:"limit"`
	PageToken *string         `json:"page_token"`
}

// recentItem is one product changed in the snapshot, at its latest state.
type recentItem struct {
	inventoryProduct
	Deleted bool `json:"deleted"`
}

type recentBody struct {
	Items   []recentItem `json:"items"`
	Page    int          `json:"page"`
	Limit   int          `json:"limit"`
	HasMore bool         `json:"has_more"`
	// NextPageToken continues the same snapshot exactly; null on the last
	// page.
	NextPageToken *string `json:"next_page_token"`
}

func badParameter(name, format string, args ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, codeInvalidParameter, map[string]any{"parameter": name}, format, args...)
}

// intField reads an optional whole number (null: absent) within [lo, hi].
func intField(raw json.RawMessage, name string, lo, hi, def int) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if c := raw[0]; err != nil || c == '"' || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, badParameter(name, "%s must be a whole number from %d to %d", name, lo, hi)
	}
	return int(f), nil
}

// parseSince reads an RFC 3339 time (which allows a lower-case t and z).
func parseSince(v *string) (time.Time, error) {
	if v == nil {
		return time.Time{}, newError(http.StatusBadRequest, codeBadRequest, map[string]any{"field": "since"},
			"since is required: an RFC 3339 time")
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(*v))
	if err != nil {
		return time.Time{}, badParameter("since", "since must be an RFC 3339 time such as 2026-11-25T10:00:00Z")
	}
	return t, nil
}

func (s *server) recentlyUpdated(c echo.Context) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	var req recentRequest
	if err := s.decodeBody(c, &req); err != nil {
		return err
	}
	since, err := parseSince(req.Since)
	if err != nil {
		return err
	}
	wh, err := optionalWarehouse(req.WarehouseID)
	if err != nil {
		return err
	}
	page, err := intField(req.Page, "page", 1, maxRecentPage, 1)
	if err != nil {
		return err
	}
	limit, err := intField(req.Limit, "limit", 1, s.MaxPageSize, s.DefaultPageSize)
	if err != nil {
		return err
	}
	var from, upTo string
	offset := (page - 1) * limit
	if req.PageToken != nil {
		// The token carries its page: a page sent beside it is not
		// checked against it (no schema can state that rule, and a
		// client that forgot to count is no worse off).
		tp, next, head, err := parsePageToken(*req.PageToken)
		if err != nil {
			return err
		}
		page, from, upTo, offset = tp, next, head, 0
	}
	v, err := s.viewOf(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()

	var changes []stockstore.Change
	var next string
	var more bool
	for attempt := 0; ; attempt++ {
		if req.PageToken == nil {
			from, upTo, err = s.Store.CursorBefore(ctx, since.Add(-s.SinceMargin))
		}
		if err == nil {
			changes, next, more, err = s.Store.ChangesIn(ctx, from, upTo, offset, limit)
		}
		expired := errors.Is(err, stockstore.ErrCursorExpired) || errors.Is(err, stockstore.ErrBadCursor)
		switch {
		case err == nil:
		case expired && req.PageToken == nil && attempt == 0:
			continue // a rebuild switched generations between two reads
		case expired && req.PageToken != nil:
			return pageTokenExpired(*req.PageToken)
		case expired:
			return sinceExpired(*req.Since)
		default:
			return unavailable(err)
		}
		break
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
	found := make(map[string]json.RawMessage, len(live))
	for i, id := range live {
		if docs[i] != nil {
			found[id] = docs[i]
		}
	}
	body := recentBody{Items: make([]recentItem, 0, len(changes)), Page: page, Limit: limit, HasMore: more}
	if more && page < maxRecentPage {
		tok := strconv.Itoa(page+1) + "~" + next + "~" + upTo
		body.NextPageToken = &tok
	}
	tag := newETag(v, "recent", wh, from, upTo, strconv.Itoa(offset), strconv.Itoa(limit))
	for _, ch := range changes {
		tag.add(ch.Position.String())
		d, ok := found[ch.ProductID]
		if !ok {
			// Deleted, or deleted between the two reads.
			body.Items = append(body.Items, recentItem{Deleted: true,
				inventoryProduct: inventoryProduct{ProductID: ch.ProductID, Warehouses: []inventoryWarehouse{}}})
			continue
		}
		tag.addBytes(docPosition(d))
		p, err := inventoryOf(d, wh, v)
		if err != nil {
			return err
		}
		body.Items = append(body.Items, recentItem{inventoryProduct: p})
	}
	return s.writeJSON(c, v, tag.String(), body)
}

// parsePageToken splits a token of the form pageTokenRE states.
func parsePageToken(tok string) (page int, next, head string, err error) {
	if !pageTokenRE.MatchString(tok) {
		return 0, "", "", badParameter("page_token", "page_token is not one this API handed out; start again from page 1 without it")
	}
	parts := strings.SplitN(tok, "~", 3)
	page, _ = strconv.Atoi(parts[0])
	return page, parts[1], parts[2], nil
}

func pageTokenExpired(tok string) *apiError {
	return newError(http.StatusGone, codeCursorExpired, map[string]any{
		"page_token": tok,
		"resync":     map[string]string{"how": "start again from page 1 with the same since and no page_token"},
	}, "the page token's snapshot is gone (the cache was rebuilt, or its changes were trimmed)")
}

func sinceExpired(since string) *apiError {
	return newError(http.StatusGone, codeCursorExpired, map[string]any{
		"since":  since,
		"resync": map[string]string{"how": "read the products you track in full (POST /v1/batch/stock), then ask again with since = the time you started that read"},
	}, "since is older than the retained change window: changes after it may have been trimmed off")
}
