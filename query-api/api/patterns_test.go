package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stockpipe/stock/internal/stockstore"
)

// The cursor and page token forms openapi.json states are the ones the
// handlers check, and they fit the store's cursors: a generator trusting
// the document makes exactly the values the server reads as well formed.
func TestDocumentedPatternsAreTheCheckedOnes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				Schema struct {
					Pattern string `json:"pattern"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Pattern string `json:"pattern"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	var cursor string
	for _, p := range doc.Paths["/v1/stock/changes"]["get"].Parameters {
		if p.Name == "cursor" {
			cursor = p.Schema.Pattern
		}
	}
	if want := changeCursorRE.String(); cursor != want {
		t.Errorf("documented cursor pattern %q, checked %q", cursor, want)
	}
	if got := doc.Components.Schemas["RecentlyUpdatedRequest"].Properties["page_token"].Pattern; got != pageTokenPattern {
		t.Errorf("documented page_token pattern %q, checked %q", got, pageTokenPattern)
	}
	if !strings.Contains(cursorPattern, "{"+strconv.Itoa(stockstore.ClusterBuckets-1)+"}") {
		t.Errorf("cursor pattern %q does not fit %d buckets", cursorPattern, stockstore.ClusterBuckets)
	}
	for _, c := range []string{"", "0:0", "12:345", "1:" + strings.Repeat("7.", 15) + "7"} {
		if !changeCursorRE.MatchString(c) {
			t.Errorf("cursor %q refused", c)
		}
	}
	for _, c := range []string{"x", "1:", ":1", "1:2.3", "1:2:3", "1:" + strings.Repeat("9", 19)} {
		if changeCursorRE.MatchString(c) {
			t.Errorf("cursor %q accepted", c)
		}
	}
}
