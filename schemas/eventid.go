package schemas

import (
	"strings"

	"github.com/stockpipe/stock/internal/position"
)

// EventID is the CloudEvents id (ce_id) of a record: the source position,
// stable across retries, then "/" and the parts that make it unique per
// record (the product id; for a row change also the warehouse id).
func EventID(p position.Position, parts ...string) string {
	return p.String() + "/" + strings.Join(parts, "/")
}

// PositionOfEventID reads the position back from a ce_id: "HI/LO:INDEX",
// optionally followed by "/" and anything. A tombstone carries no body, so
// its position is only there.
func PositionOfEventID(id string) (position.Position, error) {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		if j := strings.IndexByte(id[i:], '/'); j >= 0 {
			id = id[:i+j]
		}
	}
	return position.Parse(id)
}
