// Package store is the profile service's bbolt storage. It implements
// domain.Repository; every multi-record invariant (a customer, its indexes,
// its counters and the change-feed entry) is written in one transaction.
package store

import (
	bolt "go.etcd.io/bbolt"

	"encoding/binary"
	"rapport.dev/services/profile/domain"
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
//	├── customer_meta  tenant 0 customer_id                     -> flags (1 byte: 1 = referred) + merged_into
//	│                  what recording an event needs, without parsing the customer (schema 2)
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
	bucketMeta        = []byte("customer_meta")
	bucketStats       = []byte("stats")
	bucketTenantStats = []byte("tenant_stats")
	bucketEvents      = []byte("events")
	bucketEventIDs    = []byte("event_ids")
	bucketOrders      = []byte("orders")
	bucketDupIndex    = []byte("dup_index")
)

// SchemaVersion is the layout above. Version 2 added customer_meta.
const SchemaVersion = 2

// Buckets lists every bucket the store needs, created on open.
func Buckets() [][]byte {
	return append([][]byte{bucketCustomers, bucketMeta, bucketStats, bucketTenantStats, bucketEvents,
		bucketEventIDs, bucketOrders, bucketDupIndex}, feed.Buckets...)
}

// Options returns the boltdb options for profile.db.
func Options() boltdb.Options {
	return boltdb.Options{Schema: SchemaVersion, Buckets: Buckets(), Migrations: []boltdb.Migration{
		{From: 1, Up: addCustomerMeta},
	}}
}

// addCustomerMeta builds customer_meta from the customers of a version 1 file.
func addCustomerMeta(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketCustomers).ForEach(func(k, v []byte) error {
		c, err := decode[domain.Customer](v)
		if err != nil {
			return err
		}
		return meta.Put(boltdb.Copy(k), encodeMeta(c))
	})
}

// encodeMeta is the customer_meta value of c.
func encodeMeta(c *domain.Customer) []byte {
	var flags byte
	if c.Referred() {
		flags |= 1
	}
	return append([]byte{flags}, c.MergedInto...)
}

// decodeMeta rebuilds the part of a customer that recording an event needs.
func decodeMeta(id string, v []byte) *domain.Customer {
	c := &domain.Customer{ID: id, MergedInto: string(v[1:])}
	if v[0]&1 != 0 {
		c.Acquisition.Channel = domain.ChannelReferral
	}
	return c
}

// sortableTime encodes t so that byte order is time order, before 1970 too.
func sortableTime(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano())^(1<<63))
	return b
}
