// Package store is the loyalty service's bbolt storage: programmes,
// members with their points account (the projection of the ledger), the
// append-only ledger, the idempotency keys, rewards, coupons and the
// member timers. A ledger entry, the account it changes, its idempotency
// key, its timers and its change-feed event commit in one transaction.
package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/timers"
)

// The bucket tree of loyalty.db. Composite keys join their parts with a NUL
// byte (boltdb.Key); numbers are 8-byte big-endian.
//
//	loyalty.db
//	├── meta       "schema_version" -> uint64; "coupon_secret" -> 32 random bytes (coupon codes' HMAC key)
//	├── programs   tenant 0 program                      -> domain.Program (JSON)
//	├── members    tenant 0 program 0 customer           -> member (binary, member_codec.go): profile, tier, account, qualifiers
//	├── entries    tenant 0 program 0 customer 0 seq(8)  -> domain.Entry (JSON), never changed
//	├── keys       tenant 0 program 0 customer 0 key     -> seq(8) ‖ request fingerprint(32)
//	├── rewards    tenant 0 program 0 reward             -> reward (JSON)
//	├── coupons    tenant 0 program 0 code               -> coupon (JSON)
//	├── coupon_of  tenant 0 program 0 campaign 0 customer -> code
//	├── customers  tenant 0 customer                     -> customerInfo (JSON): time zone, birth month from the profile feed
//	├── timers, timer_of                                 platform/timers, owner tenant 0 program 0 customer:
//	│                                                    the member's next expiry, grace end or window rollover
//	├── feed, feed_cursors, feed_deadletters             see platform/feed; the profile and segmentation
//	│                                                    followers' cursors live in feed_cursors
var (
	bucketPrograms = []byte("programs")
	bucketMembers  = []byte("members")
	bucketEntries  = []byte("entries")
	bucketKeys     = []byte("keys")
	bucketRewards  = []byte("rewards")
	bucketCoupons  = []byte("coupons")
	bucketCouponOf = []byte("coupon_of")

	memberTimers = timers.Set{ByDue: []byte("timers"), ByOwner: []byte("timer_of")}
)

// SchemaVersion is the layout above. Version 1 held members as JSON.
const SchemaVersion = 2

// Options returns the boltdb options for loyalty.db.
func Options() boltdb.Options {
	buckets := [][]byte{bucketPrograms, bucketMembers, bucketEntries, bucketKeys, bucketRewards, bucketCoupons, bucketCouponOf, bucketCustomers}
	buckets = append(buckets, memberTimers.Buckets()...)
	return boltdb.Options{Schema: SchemaVersion, Buckets: append(buckets, feed.Buckets...), Migrations: []boltdb.Migration{
		{From: 1, Up: binaryMembers},
	}}
}

// migrateChunk is how many members binaryMembers reads before it writes.
var migrateChunk = 10000

// binaryMembers re-encodes a version 1 file's JSON members in the binary
// encoding.
func binaryMembers(tx *bolt.Tx) error {
	return boltdb.RewriteValues(tx, bucketMembers, migrateChunk, func(k, v []byte) ([]byte, error) {
		m, err := boltdb.GetJSON[member](v)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		return encodeMember(m), nil
	})
}
