package stockstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/position"
)

// A bounded stretch of the change index read at an offset, for the query
// API's recently-updated route (compat_reads.go maps its time to a cursor).

// rangeScript counts one bucket's entries with a sequence in (from, to]
// and reads count of them from offset on, with each product's position and
// whether it is deleted, like changesScript.
//
// KEYS[1] the generation pointer; ARGV[1] base, ARGV[2] bucket tag, ARGV[3]
// the cursors' generation, ARGV[4] from, ARGV[5] to, ARGV[6] offset,
// ARGV[7] count. Returns {gen, "ok"|"expired", head, entries in range, then
// id, seq, position key, deleted per entry}.
var rangeScript = redis.NewScript(luaPrefix + `
local p, gen = gprefix(ARGV[1], '')
local bt = ARGV[2]
local k = ckey(p, bt)
local head = redis.call('GET', k .. ':seq') or '0'
if ARGV[3] ~= gen then return {gen, 'expired', head, 0} end
local floor = tonumber(redis.call('GET', k .. ':floor') or '0')
if tonumber(ARGV[4]) < floor then return {gen, 'expired', head, 0} end
local from = '(' .. ARGV[4]
local n = redis.call('ZCOUNT', k, from, ARGV[5])
local out = {gen, 'ok', head, n}
local count = tonumber(ARGV[7])
if count <= 0 then return out end
local ids = redis.call('ZRANGEBYSCORE', k, from, ARGV[5], 'WITHSCORES', 'LIMIT', ARGV[6], count)
for i = 1, #ids, 2 do
  local id = ids[i]
  local pos = redis.call('HGET', key(p, bt, 'product:', id), 'pos')
  local del = '0'
  if not pos then
    pos = redis.call('GET', key(p, bt, 'tombstone:', id)) or ''
    del = '1'
  end
  out[#out + 1] = id
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = pos
  out[#out + 1] = del
end
return out
`)

// ChangesIn reads the entries of the change index after cursor from and up
// to cursor upTo (both of Changes's form and of one generation), skipping
// offset of them and returning up to limit, in apply order within a bucket
// and bucket after bucket on a Cluster (an order an offset can be counted
// in, unlike Changes's turns). next is the cursor after the last entry
// returned (upTo when none is left); more says whether entries follow it
// up to upTo. ErrCursorExpired when the index no longer covers from (a
// rebuild replaced the generation, or trimming passed it); ErrBadCursor for
// cursors Changes never handed out.
func (s *Store) ChangesIn(ctx context.Context, from, upTo string, offset, limit int) (changes []Change, next string, more bool, err error) {
	if offset < 0 || limit < 0 {
		return nil, "", false, fmt.Errorf("reading changes: offset and limit must not be negative, got %d and %d", offset, limit)
	}
	fg, fs, err := s.parseCursor(from)
	if err != nil {
		return nil, "", false, err
	}
	tg, ts, err := s.parseCursor(upTo)
	if err != nil {
		return nil, "", false, err
	}
	if fg != tg || fg == "" {
		return nil, "", false, fmt.Errorf("%w: %q and %q", ErrBadCursor, from, upTo)
	}
	nb := s.nBuckets()
	rangeCall := func(b int, off, count int) scriptCall {
		return scriptCall{script: rangeScript, keys: []string{s.pointer(b)},
			args: []any{s.base, s.bucketTag(b), fg, fs[b], ts[b], off, count}}
	}
	// Counts first, then the reads they place the offset in; one bucket
	// (a single node) counts and reads in one call.
	counts := make([]int64, nb)
	entries := make([][]changeEntry, nb)
	if nb == 1 {
		got, err := s.rangeAnswers(ctx, []scriptCall{rangeCall(0, offset, limit)}, counts)
		if err != nil {
			return nil, "", false, err
		}
		entries[0] = got[0]
	} else {
		calls := make([]scriptCall, nb)
		for b := range calls {
			calls[b] = rangeCall(b, 0, 0)
		}
		if _, err := s.rangeAnswers(ctx, calls, counts); err != nil {
			return nil, "", false, err
		}
		calls = calls[:0]
		var of []int
		skip, left := int64(offset), int64(limit)
		for b := range nb {
			if skip >= counts[b] {
				skip -= counts[b]
				continue
			}
			if left > 0 {
				take := min(counts[b]-skip, left)
				calls = append(calls, rangeCall(b, int(skip), int(take)))
				of = append(of, b)
				left -= take
			}
			skip = 0
		}
		if len(calls) > 0 {
			got, err := s.rangeAnswers(ctx, calls, nil)
			if err != nil {
				return nil, "", false, err
			}
			for i, b := range of {
				entries[b] = got[i]
			}
		}
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	cur := slices.Clone(fs)
	lastBucket := -1
	for b := range nb {
		for _, e := range entries[b] {
			changes = append(changes, e.Change)
			cur[b] = e.seq
			lastBucket = b
		}
	}
	consumed := int64(offset) + int64(len(changes))
	more = consumed < total
	switch {
	case !more:
		cur = slices.Clone(ts)
	case lastBucket < 0:
		// Nothing returned but entries left: an offset short of them
		// places the cursor where they start.
	default:
		for b := 0; b < lastBucket; b++ {
			cur[b] = ts[b] // passed, bucket-major
		}
	}
	return changes, fg + ":" + strings.Join(cur, "."), more, nil
}

// rangeAnswers runs range calls and decodes their entries; counts, when
// given, receives each call's count of entries in range, in call order.
func (s *Store) rangeAnswers(ctx context.Context, calls []scriptCall, counts []int64) ([][]changeEntry, error) {
	if err := s.runReads(ctx, calls); err != nil {
		return nil, fmt.Errorf("reading changes: %w", err)
	}
	out := make([][]changeEntry, len(calls))
	var gen string
	for i, c := range calls {
		vals, err := c.cmd.Slice()
		if err == nil && (len(vals) < 4 || (len(vals)-4)%4 != 0) {
			err = fmt.Errorf("unexpected answer of %d values", len(vals))
		}
		if err != nil {
			return nil, fmt.Errorf("reading changes: %w", err)
		}
		if g := fmt.Sprint(vals[0]); i == 0 {
			gen = g
		} else if g != gen {
			return nil, fmt.Errorf("reading changes: %w: a generation switch is under way", ErrCursorExpired)
		}
		if fmt.Sprint(vals[1]) == "expired" {
			return nil, fmt.Errorf("%w: generation %s", ErrCursorExpired, fmt.Sprint(vals[0]))
		}
		if counts != nil {
			counts[i] = toInt64(vals[3])
		}
		for j := 4; j < len(vals); j += 4 {
			id, pk := fmt.Sprint(vals[j]), fmt.Sprint(vals[j+2])
			var p position.Position
			if pk != "" {
				if p, err = position.ParseKey(pk); err != nil {
					return nil, fmt.Errorf("reading change of %q: %w", id, err)
				}
			}
			out[i] = append(out[i], changeEntry{
				Change: Change{ProductID: id, Position: p, Deleted: fmt.Sprint(vals[j+3]) == "1"},
				seq:    fmt.Sprint(vals[j+1]),
			})
		}
	}
	return out, nil
}
