package boltdb

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// GetJSON decodes a JSON value read from a bucket. The bytes are only read
// inside the transaction, so the result is safe to keep after it.
func GetJSON[T any](raw []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("boltdb: decode %T: %w", v, err)
	}
	return v, nil
}

// PutJSON stores v as JSON under key.
func PutJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("boltdb: encode %T: %w", v, err)
	}
	return b.Put(key, raw)
}
