// Package store is the profile service's bbolt storage. It implements
// domain.Repository; every multi-record invariant (a customer, its indexes,
// its counters and the change-feed entry) is written in one transaction.
package store

import (
	"encoding/binary"
	"time"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
)

// The bucket tree of profile.db. Composite keys join their parts with a NUL
// byte (boltdb.Key); ids never contain NUL, so a "tenant\x00" prefix scan
// sees exactly one tenant's records.
//
//	profile.db
//	├── meta           "schema_version" -> uint64 BE
//	├── customers      tenant 0 customer_id                     -> domain.Customer (JSON)
//	├── stats          tenant 0 customer_id                     -> domain.Stats (JSON)
//	├── tenant_stats   tenant                                   -> domain.TenantStats (JSON)
//	├── events         tenant 0 customer_id 0 at(8) 0 seq(8)     -> domain.Event (JSON)
//	│                  at = occur time in ns, sign bit flipped so it sorts; seq = insertion order
//	├── event_ids      tenant 0 event_id                        -> key in events (idempotency index)
//	├── orders         tenant 0 customer_id 0 order_id          -> domain.Order (JSON), refundable state
//	├── dup_index      tenant 0 match_key 0 customer_id         -> empty (phone:/email: match keys)
//	├── feed           seq(8)                                   -> feedv1.Event (protobuf), see platform/feed
//	├── feed_cursors   (unused by profile; declared by platform/feed)
//	└── feed_deadletters
var (
	bucketCustomers   = []byte("customers")
	bucketStats       = []byte("stats")
	bucketTenantStats = []byte("tenant_stats")
	bucketEvents      = []byte("events")
	bucketEventIDs    = []byte("event_ids")
	bucketOrders      = []byte("orders")
	bucketDupIndex    = []byte("dup_index")
)

// SchemaVersion is the layout above.
const SchemaVersion = 1

// Buckets lists every bucket the store needs, created on open.
func Buckets() [][]byte {
	return append([][]byte{bucketCustomers, bucketStats, bucketTenantStats, bucketEvents,
		bucketEventIDs, bucketOrders, bucketDupIndex}, feed.Buckets...)
}

// Options returns the boltdb options for profile.db.
func Options() boltdb.Options {
	return boltdb.Options{Schema: SchemaVersion, Buckets: Buckets()}
}

// sortableTime encodes t so that byte order is time order, before 1970 too.
func sortableTime(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano())^(1<<63))
	return b
}
