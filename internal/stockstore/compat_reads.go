package stockstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reads of the change index for the query API's compatibility routes (the
// replaced system's "recently updated since a time", paged by number): a
// time mapped to a cursor, and a bounded stretch of the index read at an
// offset. They read what Changes reads and write nothing.

// probeScript reads, for one bucket, the index's generation, head, floor
// and size, and n entries at ranks spread evenly strictly between lo and hi
// (hi < 0: the size), each with its product's commit time ("" when the
// product is deleted: a tombstone keeps no time).
//
// KEYS[1] the generation pointer; ARGV[1] base, ARGV[2] bucket tag, ARGV[3]
// lo, ARGV[4] hi, ARGV[5] n. Returns {gen, head, floor, size, then rank,
// id, seq, commit time per entry}.
var probeScript = redis.NewScript(luaPrefix + `
local p, gen = gprefix(ARGV[1], '')
local bt = ARGV[2]
local k = ckey(p, bt)
local head = redis.call('GET', k .. ':seq') or '0'
local floor = redis.call('GET', k .. ':floor') or '0'
local size = redis.call('ZCARD', k)
local out = {gen, head, floor, size}
local lo, hi, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if hi < 0 or hi > size then hi = size end
-- ZRANGE reads a negative rank from the end: never ask for one.
if lo < -1 then lo = -1 end
local gap = hi - lo - 1
if gap < n then n = gap end
for i = 1, n do
  local r = lo + math.floor(i * (gap + 1) / (n + 1))
  local e = redis.call('ZRANGE', k, r, r, 'WITHSCORES')
  if e[1] then
    local doc = redis.call('HGET', key(p, bt, 'product:', e[1]), 'doc')
    local ct = ''
    if doc then ct = string.match(doc, '"commit_time":"([^"]*)"') or '' end
    out[#out + 1] = r
    out[#out + 1] = e[1]
    out[#out + 1] = e[2]
    out[#out + 1] = ct
  end
end
return out
`)

// probesPerRound is how many entries of each bucket one round of the
// search reads, all buckets in one pipelined round trip; a million entries
// take five rounds.
const probesPerRound = 15

// checkWindow is how many entries before the found start one round of the
// check reads, and checkRounds how many windows it may go back.
const (
	checkWindow = 100
	checkRounds = 10
)

type probeEntry struct {
	rank int64
	seq  string
	// before: the product committed before the time asked; known: it has
	// a commit time at all (a deleted product's entry has none).
	before, known bool
}

type probeAnswer struct {
	head, floor string
	size        int64
	entries     []probeEntry // in rank order
}

// probe runs probeScript on buckets of, one call each with (lo, hi, n),
// and checks that every answer is of generation gen (gen "" takes the
// first answer's, returned).
func (s *Store) probe(ctx context.Context, t time.Time, gen string, of []int, lo, hi []int64, n int) (string, []probeAnswer, error) {
	calls := make([]scriptCall, len(of))
	for i, b := range of {
		calls[i] = scriptCall{script: probeScript, keys: []string{s.pointer(b)},
			args: []any{s.base, s.bucketTag(b), lo[b], hi[b], n}}
	}
	if err := s.runReads(ctx, calls); err != nil {
		return "", nil, err
	}
	out := make([]probeAnswer, len(calls))
	for i, c := range calls {
		vals, err := c.cmd.Slice()
		if err == nil && (len(vals) < 4 || (len(vals)-4)%4 != 0) {
			err = fmt.Errorf("unexpected answer of %d values", len(vals))
		}
		if err != nil {
			return "", nil, err
		}
		if g := fmt.Sprint(vals[0]); gen == "" {
			gen = g
		} else if g != gen {
			// A rebuild switched generations meanwhile; the caller may
			// try again.
			return "", nil, fmt.Errorf("%w: the generation changed", ErrCursorExpired)
		}
		a := probeAnswer{head: fmt.Sprint(vals[1]), floor: fmt.Sprint(vals[2]), size: toInt64(vals[3])}
		for j := 4; j < len(vals); j += 4 {
			ct := fmt.Sprint(vals[j+3])
			a.entries = append(a.entries, probeEntry{rank: toInt64(vals[j]), seq: fmt.Sprint(vals[j+2]),
				before: committedBefore(ct, t), known: ct != ""})
		}
		out[i] = a
	}
	return gen, out, nil
}

// CursorBefore maps a time onto the change index: it returns a cursor
// (Changes's form) that starts, per bucket, after an entry of a product
// that committed before t, and the head cursor. Such an entry is a sound
// start for a reader who assumes every change reaches the cache within the
// margin it subtracted from its own time to get t: the entry was applied
// before anything that reader has not seen yet.
//
// Commit times follow apply order only roughly (partitions are applied
// side by side), so each bucket is searched in rounds of probes, narrowing
// on the last probe before t; then the entries just before the start found
// are checked, and the start moves back past any that did not commit
// before t, so that one entry applied late (a retried batch) cannot carry
// the start past the entries it overtook.
//
// A bucket in which no entry before t is found starts at its beginning;
// if entries were trimmed off it, what they held cannot be told, and
// CursorBefore returns ErrCursorExpired.
func (s *Store) CursorBefore(ctx context.Context, t time.Time) (cursor, head string, err error) {
	fail := func(err error) (string, string, error) {
		return "", "", fmt.Errorf("mapping %s onto the change index: %w", t.Format(time.RFC3339Nano), err)
	}
	nb := s.nBuckets()
	lo, hi := make([]int64, nb), make([]int64, nb)
	start := make([]string, nb) // the sequence of the entry at lo
	heads, floors := make([]string, nb), make([]string, nb)
	all := make([]int, nb)
	for b := range nb {
		lo[b], hi[b], all[b] = -1, -1, b // the script reads hi -1 as the index's size
	}
	gen, first, err := s.probe(ctx, t, "", all, lo, hi, probesPerRound)
	if err != nil {
		return fail(err)
	}
	for b, a := range first {
		heads[b], floors[b], hi[b] = a.head, a.floor, a.size
	}
	// The search. The round bound only guards against an index that keeps
	// changing under it.
	answers, of := first, all
	for round := 0; round < 32 && len(of) > 0; round++ {
		for i, b := range of {
			es := answers[i].entries
			if len(es) == 0 {
				hi[b] = lo[b] + 1 // nothing left to probe (or the index shrank)
				continue
			}
			// Keep (last probe before t, the probe after it).
			newLo, newHi := lo[b], es[0].rank
			for j, e := range es {
				if e.before {
					newLo, newHi, start[b] = e.rank, hi[b], e.seq
					if j+1 < len(es) {
						newHi = es[j+1].rank
					}
				}
			}
			lo[b], hi[b] = newLo, newHi
		}
		of = of[:0:0]
		for b := range nb {
			if hi[b]-lo[b] > 1 {
				of = append(of, b)
			}
		}
		if len(of) > 0 {
			if _, answers, err = s.probe(ctx, t, gen, of, lo, hi, probesPerRound); err != nil {
				return fail(err)
			}
		}
	}
	// The check, window by window back from each start.
	for round := 0; round < checkRounds; round++ {
		of = of[:0:0]
		wlo, whi := make([]int64, nb), make([]int64, nb)
		for b := range nb {
			if lo[b] >= 0 {
				of = append(of, b)
				wlo[b], whi[b] = lo[b]-checkWindow, lo[b]+1 // ranks lo-checkWindow+1 to lo
			}
		}
		if len(of) == 0 {
			break
		}
		if _, answers, err = s.probe(ctx, t, gen, of, wlo, whi, checkWindow); err != nil {
			return fail(err)
		}
		moved := false
		for i, b := range of {
			es := answers[i].entries
			late := -1 // the earliest entry of the window not committed before t
			for j, e := range es {
				if e.known && !e.before {
					late = j
					break
				}
			}
			switch {
			case late < 0:
				if len(es) > 0 {
					start[b] = es[len(es)-1].seq
				}
				lo[b] = -1 // done
				continue
			case late == 0:
				// Read the window before it; its last entry is the start.
				// Out of rounds, the bucket starts at its beginning.
				lo[b], start[b] = es[0].rank-1, ""
			default:
				lo[b], start[b] = es[late-1].rank, es[late-1].seq
			}
			moved = true
			if lo[b] < 0 {
				start[b] = "" // back to the bucket's beginning
			}
		}
		if !moved {
			break
		}
	}
	cur := make([]string, nb)
	for b := range nb {
		switch {
		case start[b] != "":
			cur[b] = start[b]
		case floors[b] != "0":
			return "", "", fmt.Errorf("%w: changes since %s may have been trimmed off the index", ErrCursorExpired, t.Format(time.RFC3339Nano))
		default:
			cur[b] = "0" // from the first entry the bucket ever had
		}
	}
	return gen + ":" + strings.Join(cur, "."), gen + ":" + strings.Join(heads, "."), nil
}

// committedBefore reports whether a stored commit time is before t; an
// unknown or unreadable one is not (the caller then keeps the entry).
func committedBefore(ct string, t time.Time) bool {
	if ct == "" {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, ct)
	return err == nil && at.Before(t)
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// runReads is run for scripts that LoadScripts does not know (allScripts is
// the write path's list): NOSCRIPT is answered by loading the calls' own
// scripts, once.
func (s *Store) runReads(ctx context.Context, calls []scriptCall) error {
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		for i := range calls {
			c := &calls[i]
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, err := pipe.Exec(ctx)
		if err == nil {
			return nil
		}
		noscript := false
		for _, c := range calls {
			noscript = noscript || redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT")
		}
		if !noscript || attempt > 0 {
			return err
		}
		for _, sc := range []*redis.Script{probeScript, rangeScript} {
			if err := sc.Load(ctx, s.rdb).Err(); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("loading lua script: %w", err)
			}
		}
	}
}
