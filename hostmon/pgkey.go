package hostmon

import (
	"encoding/json"

	"pbxsync/internal/wire"
)

// KeyOf returns the canonical string of the key columns of a JSON row of
// table t (a JSON array of the key values, in key order) and a JSON object
// holding just those columns, as Apply takes for a delete.
func KeyOf(t *wire.TableSchema, row json.RawMessage) (string, json.RawMessage, error) {
	return keyOf(t, row)
}
