package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Write prints s for a terminal, now being the time ages are measured from.
func (s Status) Write(w io.Writer, now time.Time) error {
	state := s.GroupState
	if state == "" {
		state = "unknown"
	}
	fmt.Fprintf(w, "levels topic %s, group %s: %s, %d members, total lag %d\n", s.Topic, s.Group, state, s.Members, s.Lag)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tEND\tCOMMITTED\tLAG\tOWNER\tAPPLIED_OFFSET\tPOSITION\tCOMMIT_TIME\tAPPLIED_AGO")
	for _, p := range s.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		applied, position, commit, ago := "-", "-", "-", "-"
		if m := p.Watermark; m != nil {
			applied, position = fmt.Sprint(m.Offset), m.Position.String()
			if !m.CommitTime.IsZero() {
				commit = m.CommitTime.UTC().Format(time.RFC3339Nano)
			}
			if !m.AppliedAt.IsZero() {
				ago = now.Sub(m.AppliedAt).Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Partition, p.End, committed, p.Lag,
			orNone(p.Owner), applied, position, commit, ago)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	pointer := map[stockstore.PointerState]string{
		stockstore.PointerActive:  "active",
		stockstore.PointerMissing: "MISSING (cache lost, or never built: the projector rebuilds it)",
		stockstore.PointerSplit:   "SPLIT (a generation switch under way, or one left half done)",
	}[s.Pointer]
	rebuild := "no rebuild running"
	if s.Rebuilding {
		rebuild = "a rebuild is running"
	}
	heartbeat := "NONE (no projector of the topic alive)"
	if !s.Heartbeat.IsZero() {
		heartbeat = now.Sub(s.Heartbeat).Round(time.Millisecond).String() + " ago"
	}
	fmt.Fprintf(w, "cache under prefix %q: generation %d, pointer %s, %s, projector heartbeat %s\n",
		s.Prefix, s.Generation, pointer, rebuild, heartbeat)

	fmt.Fprintf(w, "dead letters in %s: %d held (end offsets %s)\n", s.DeadLetterTopic, s.DeadLetters, offsets(s.DeadLetterEnds))
	for _, err := range s.Errs {
		fmt.Fprintf(w, "ERROR %v\n", err)
	}
	return nil
}

func offsets(m map[int32]int64) string {
	if len(m) == 0 {
		return "none: no topic"
	}
	parts := make([]string, 0, len(m))
	for _, p := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, m[p]))
	}
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
