// Package store is the profile service's bbolt storage. It implements
// domain.Repository; every multi-record invariant (a customer, its indexes,
// its counters and the change-feed entry) is written in one transaction.
package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/convert"
	"rapport.dev/services/profile/domain"
)

// The bucket tree of profile.db. Composite keys join their parts with a NUL
// byte (boltdb.Key); ids never contain NUL, so a "tenant\x00" prefix scan
// sees exactly one tenant's records.
//
//	profile.db
//	├── meta           "schema_version" -> uint64 BE
//	├── customers      tenant 0 customer_id                     -> domain.Customer (binary, domain/customer_codec.go; schema 6)
//	├── customer_meta  tenant 0 customer_id                     -> flags (1 byte: 1 = referred) + merged_into
//	│                  what recording an event needs, without parsing the customer (schema 2)
//	├── customer_data  everything kept per customer, side by side (schema 3):
//	│                  tenant 0 customer_id 0 'e' at(8) seq(8)   -> profilev1.Event (protobuf, record_time set), the timeline
//	│                  tenant 0 customer_id 0 'o' order_id       -> domain.Order (binary, domain/codec.go), refundable state
//	│                  tenant 0 customer_id 0 's'                -> domain.Stats (binary, domain/codec.go)
//	│                  at = occur time in ns, sign bit flipped so it sorts; seq = insertion order
//	│                  (the bucket's sequence)
//	├── tenant_stats   tenant                                   -> domain.TenantStats (JSON)
//	├── event_ids      tenant 0 event_id                        -> key in customer_data (idempotency index)
//	├── dup_index      tenant 0 match_key 0 customer_id         -> empty (phone:/email: match keys)
//	├── feed           seq(8)                                   -> feedv1.Event (protobuf), see platform/feed
//	├── feed_scrubs    tenant 0 customer_id                     -> next seq(8) + upto seq(8) (schema 4)
//	│                  an erased customer's feed entries not yet scrubbed: next is the
//	│                  first to look at, upto the last entry before its customer.erased
//	├── feed_cursors   (unused by profile; declared by platform/feed)
//	└── feed_deadletters
//
// customer_data keeps the records one recorded event writes (its timeline
// entry, its order, the customer's counters) on the same leaf page or its
// neighbour, instead of on a page of each of three B+trees: a group commit
// then writes a page or two per customer, not three or four. event_ids
// cannot be ordered that way (event ids are chosen by clients); the feed
// only appends and is filled densely (feedFillPercent).
var (
	bucketCustomers    = []byte("customers")
	bucketMeta         = []byte("customer_meta")
	bucketCustomerData = []byte("customer_data")
	bucketTenantStats  = []byte("tenant_stats")
	bucketEventIDs     = []byte("event_ids")
	bucketDupIndex     = []byte("dup_index")
	bucketFeedScrubs   = []byte("feed_scrubs")
)

// Record tags in customer_data, after the customer's prefix. Within a
// customer they sort timeline, orders, counters: new events (usually the
// latest) go next to the orders and the counters they update.
const (
	tagEvent = 'e'
	tagOrder = 'o'
	tagStats = 's'
)

// feedFillPercent is how full bbolt packs the feed's pages when it splits
// them. The feed only appends in key order, so the default (half full, room
// for inserts that never come) would write twice the pages.
const feedFillPercent = 1.0

// SchemaVersion is the layout above. Version 2 added customer_meta; version
// 3 moved events, orders and stats into customer_data; version 4 added
// feed_scrubs; version 5 keeps timeline entries as protobuf (the bytes of
// the feed entry's payload) and orders and stats in a binary encoding,
// instead of JSON; version 6 keeps customers in a binary encoding too,
// instead of JSON.
const SchemaVersion = 6

// Buckets lists every bucket the store needs, created on open.
func Buckets() [][]byte {
	return append([][]byte{bucketCustomers, bucketMeta, bucketCustomerData, bucketTenantStats,
		bucketEventIDs, bucketDupIndex, bucketFeedScrubs}, feed.Buckets...)
}

// Options returns the boltdb options for profile.db.
func Options() boltdb.Options {
	return boltdb.Options{Schema: SchemaVersion, Buckets: Buckets(), Migrations: []boltdb.Migration{
		{From: 1, Up: addCustomerMeta},
		{From: 2, Up: groupByCustomer},
		{From: 3, Up: addFeedScrubs},
		{From: 4, Up: binaryRecords},
		{From: 5, Up: binaryCustomers},
	}}
}

// eventKey is the key of a timeline entry in customer_data.
func eventKey(tenant, customerID string, at time.Time, seq []byte) []byte {
	return boltdb.Key(tenant, customerID, append(append([]byte{tagEvent}, sortableTime(at)...), seq...))
}

// eventSeq is the seq part of an event key.
func eventSeq(key []byte) []byte { return key[len(key)-8:] }

// timelinePrefix is the prefix of a customer's timeline entries.
func timelinePrefix(tenant, customerID string) []byte {
	return append(boltdb.Prefix(tenant, customerID), tagEvent)
}

// ordersPrefix is the prefix of a customer's orders; the order id follows.
func ordersPrefix(tenant, customerID string) []byte {
	return append(boltdb.Prefix(tenant, customerID), tagOrder)
}

func orderKey(tenant, customerID, orderID string) []byte {
	return append(ordersPrefix(tenant, customerID), orderID...)
}

func statsKey(tenant, customerID string) []byte {
	return append(boltdb.Prefix(tenant, customerID), tagStats)
}

// addCustomerMeta builds customer_meta from the customers of a version 1
// file, which are JSON until binaryCustomers re-encodes them.
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

// addFeedScrubs creates feed_scrubs. Customers erased before version 4 keep
// their earlier feed entries: erasing them again schedules the scrub.
func addFeedScrubs(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketFeedScrubs)
	return err
}

// migrateChunk is how many keys binaryRecords and binaryCustomers read
// before they write.
var migrateChunk = 10000

// binaryRecords re-encodes the JSON records of customer_data in a version 4
// file: timeline entries as protobuf, orders and stats in their binary
// encodings. It goes a chunk of keys at a time (bbolt does not allow writes
// while a cursor walks the bucket it writes).
func binaryRecords(tx *bolt.Tx) error {
	return boltdb.RewriteValues(tx, bucketCustomerData, migrateChunk, func(k, v []byte) ([]byte, error) {
		tag, err := recordTag(k)
		if err != nil {
			return nil, err
		}
		switch tag {
		case tagEvent:
			e, err := decode[domain.Event](v)
			if err != nil {
				return nil, fmt.Errorf("event %q: %w", k, err)
			}
			raw, err := marshalEvent(convert.EventToProto(e))
			if err != nil {
				return nil, fmt.Errorf("event %q: %w", k, err)
			}
			return raw, nil
		case tagOrder:
			o, err := decode[domain.Order](v)
			if err != nil {
				return nil, fmt.Errorf("order %q: %w", k, err)
			}
			return o.AppendBinary(nil), nil
		case tagStats:
			s, err := decode[domain.Stats](v)
			if err != nil {
				return nil, fmt.Errorf("stats %q: %w", k, err)
			}
			return s.AppendBinary(nil), nil
		}
		return nil, fmt.Errorf("customer_data key %q: unknown record tag %q", k, tag)
	})
}

// binaryCustomers re-encodes the JSON customers of a version 5 file in the
// binary encoding, a chunk of keys at a time like binaryRecords.
func binaryCustomers(tx *bolt.Tx) error {
	return boltdb.RewriteValues(tx, bucketCustomers, migrateChunk, func(k, v []byte) ([]byte, error) {
		c, err := decode[domain.Customer](v)
		if err != nil {
			return nil, fmt.Errorf("customer %q: %w", k, err)
		}
		return c.MarshalBinary()
	})
}

// recordTag is the tag of a customer_data key: the byte after tenant 0
// customer_id 0.
func recordTag(k []byte) (byte, error) {
	i := bytes.IndexByte(k, boltdb.Sep)
	if i >= 0 {
		if j := bytes.IndexByte(k[i+1:], boltdb.Sep); j >= 0 && i+j+2 < len(k) {
			return k[i+j+2], nil
		}
	}
	return 0, fmt.Errorf("malformed customer_data key %q", k)
}

// The version 2 buckets that groupByCustomer folds into customer_data:
//
//	events  tenant 0 customer_id 0 at(8) 0 seq(8)  -> domain.Event (JSON)
//	orders  tenant 0 customer_id 0 order_id        -> domain.Order (JSON)
//	stats   tenant 0 customer_id                   -> domain.Stats (JSON)
var (
	v2Events = []byte("events")
	v2Orders = []byte("orders")
	v2Stats  = []byte("stats")
)

// groupByCustomer moves the events, orders and stats of a version 2 file
// into customer_data, rewrites event_ids to the new event keys, and drops the
// old buckets. Sequence numbers are kept, and the new bucket continues the
// events bucket's sequence.
func groupByCustomer(tx *bolt.Tx) error {
	data, err := tx.CreateBucketIfNotExists(bucketCustomerData)
	if err != nil {
		return err
	}
	events, orders, stats := tx.Bucket(v2Events), tx.Bucket(v2Orders), tx.Bucket(v2Stats)
	if events != nil {
		if err := data.SetSequence(events.Sequence()); err != nil {
			return err
		}
		if err := events.ForEach(func(k, v []byte) error {
			nk, err := v3EventKey(k)
			if err != nil {
				return err
			}
			return data.Put(nk, boltdb.Copy(v))
		}); err != nil {
			return err
		}
	}
	if orders != nil {
		if err := orders.ForEach(func(k, v []byte) error {
			tenant, rest, ok1 := bytes.Cut(k, []byte{boltdb.Sep})
			customer, orderID, ok2 := bytes.Cut(rest, []byte{boltdb.Sep})
			if !ok1 || !ok2 {
				return fmt.Errorf("malformed orders key %q", k)
			}
			return data.Put(orderKey(string(tenant), string(customer), string(orderID)), boltdb.Copy(v))
		}); err != nil {
			return err
		}
	}
	if stats != nil {
		if err := stats.ForEach(func(k, v []byte) error {
			tenant, customer, ok := bytes.Cut(k, []byte{boltdb.Sep})
			if !ok {
				return fmt.Errorf("malformed stats key %q", k)
			}
			return data.Put(statsKey(string(tenant), string(customer)), boltdb.Copy(v))
		}); err != nil {
			return err
		}
	}
	// event_ids is rewritten after the walk: a bucket must not change under
	// its own cursor.
	if ids := tx.Bucket(bucketEventIDs); ids != nil {
		var keys, vals [][]byte
		if err := ids.ForEach(func(k, v []byte) error {
			nv, err := v3EventKey(v)
			if err != nil {
				return err
			}
			keys, vals = append(keys, boltdb.Copy(k)), append(vals, nv)
			return nil
		}); err != nil {
			return err
		}
		for i := range keys {
			if err := ids.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
	}
	for _, name := range [][]byte{v2Events, v2Orders, v2Stats} {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// v3EventKey turns a version 2 event key, tenant 0 customer 0 at(8) 0
// seq(8), into its customer_data key. at may contain NUL bytes, so the key
// is cut from its end.
func v3EventKey(k []byte) ([]byte, error) {
	const tail = 8 + 1 + 8
	if len(k) < tail+3 || k[len(k)-tail-1] != boltdb.Sep || k[len(k)-9] != boltdb.Sep {
		return nil, fmt.Errorf("malformed events key %q", k)
	}
	prefix := k[:len(k)-tail] // tenant 0 customer 0
	nk := make([]byte, 0, len(prefix)+1+16)
	nk = append(nk, prefix...)
	nk = append(nk, tagEvent)
	nk = append(nk, k[len(k)-tail:len(k)-9]...)
	return append(nk, k[len(k)-8:]...), nil
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
