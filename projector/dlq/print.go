package dlq

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// List prints the dead letters cfg selects to w, one a line, then how many
// by reason code. Values are never printed: they may be anything.
func List(ctx context.Context, cfg Config, w io.Writer) (int, error) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tKEY\tREASON_CODE\tFROM\tTIME\tREASON")
	byReason := Report{}
	err := Read(ctx, cfg, func(l Letter) error {
		byReason[l.ReasonCode]++
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", l.Partition, l.Offset, key(l.Key), orNone(l.ReasonCode),
			from(l), when(l.Time), oneLine(l.Reason))
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	n := 0
	for _, c := range byReason {
		n += c
	}
	fmt.Fprintf(w, "%d dead letters in %s%s\n", n, cfg.DeadLetterTopic, counts(byReason))
	return n, err
}

// ReplayTo runs Replay, printing each dead letter's outcome to w and a
// summary at the end.
func ReplayTo(ctx context.Context, cfg Config, rc ReplayConfig, store Applier, w io.Writer) (Report, error) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tKEY\tREASON_CODE\tOUTCOME\tDETAIL")
	rep, err := Replay(ctx, cfg, rc, store, func(r Result) {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", r.Partition, r.Offset, key(r.Key), orNone(r.ReasonCode),
			r.Outcome, oneLine(r.Detail))
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	verb := "replayed"
	if rc.DryRun {
		verb = "checked (dry run, nothing written)"
	}
	fmt.Fprintf(w, "%s %d dead letters of %s%s\n", verb, total(rep), cfg.DeadLetterTopic, counts(rep))
	if rep[Untrusted] > 0 {
		fmt.Fprintln(w, "untrusted ones were never the producer's: find their writer; --allow-untrusted only for a topic fed another way on purpose")
	}
	return rep, err
}

func total(r Report) int {
	n := 0
	for _, c := range r {
		n += c
	}
	return n
}

// counts renders ": a 1, b 2" in key order; "" when empty.
func counts(r Report) string {
	if len(r) == 0 {
		return ""
	}
	parts := make([]string, 0, len(r))
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, fmt.Sprintf("%s %d", orNone(k), r[k]))
	}
	return ": " + strings.Join(parts, ", ")
}

// key quotes a key and bounds it: a dead letter's key may be anything.
func key(k []byte) string { return fmt.Sprintf("%.64q", k) }

func from(l Letter) string {
	if l.FromTopic == "" {
		return "-"
	}
	return fmt.Sprintf("%s/%d@%d", l.FromTopic, l.FromPartition, l.FromOffset)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a reason on its line: it quotes record content.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
}
