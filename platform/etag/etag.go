// Package etag derives the entity tags of stored records: a short hash of a
// record's JSON encoding, so that any change to it changes the tag.
package etag

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
)

// Of returns the tag of v: 16 URL-safe characters of the SHA-256 of its
// JSON encoding. The caller leaves the record's own etag field out of v.
func Of(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic("etag: " + err.Error()) // records are plain data; failing to encode one is a programming error
	}
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
