// Package store is the segmentation service's bbolt storage and the
// transactional work on it: applying the profile feed to per-customer state,
// keeping dynamic segment membership current (on events and on durable
// timers), rescoring the population, and the segment catalogue. Every change
// of state, its membership consequences, its timers and its change-feed
// entries commit in one transaction.
package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/services/segmentation/domain"
)

// The bucket tree of segmentation.db. Composite keys join their parts with a
// NUL byte (boltdb.Key); numbers are 8-byte big-endian.
//
//	segmentation.db
//	├── meta        "schema_version" -> uint64
//	├── states      tenant 0 customer                 -> domain.State (binary, domain/state_codec.go): purchases, complaints, …
//	├── profiles    tenant 0 customer                 -> profilev1.Customer (protobuf), as the profile feed last showed it
//	├── scores      tenant 0 customer                 -> domain.Score (binrec, codec.go; JSON before), population-relative
//	├── settings    tenant                            -> domain.Settings (JSON)
//	├── segments    tenant 0 segment                  -> segmentRecord (JSON)
//	├── members     tenant 0 segment 0 customer       -> membership (binrec, codec.go; JSON before): since, reason
//	├── member_of   tenant 0 customer 0 segment       -> enter time (8)
//	├── history     tenant 0 customer 0 segment 0 seq -> historyEntry (binrec, codec.go; JSON before)
//	├── sizes       tenant 0 segment 0 day(8)         -> size at the end of that UTC day (8)
//	├── timers      due(8) 0 tenant 0 customer        -> empty: re-evaluate the customer at due
//	├── timer_of    tenant 0 customer                 -> due(8), so a reschedule finds the old timer
//	├── value_fits, value_fit_order, value_fit_queue  see valuefits.go
//	├── feed, feed_cursors, feed_deadletters          see platform/feed; the cursor of the
//	│                                                 profile follower lives in feed_cursors
var (
	bucketStates   = []byte("states")
	bucketProfiles = []byte("profiles")
	bucketScores   = []byte("scores")
	bucketSettings = []byte("settings")
	bucketSegments = []byte("segments")
	bucketMembers  = []byte("members")
	bucketMemberOf = []byte("member_of")
	bucketHistory  = []byte("history")
	bucketSizes    = []byte("sizes")
	bucketTimers   = []byte("timers")
	bucketTimerOf  = []byte("timer_of")
)

// SchemaVersion is the layout above. Version 1 kept states as JSON;
// version 2 keeps them in domain.State's binary encoding.
const SchemaVersion = 2

// Options returns the boltdb options for segmentation.db.
//
// A new file has 16 KiB pages. bbolt writes every dirty page with its own
// pwrite, and a full re-evaluation or a segment created writes hundreds of
// thousands of them: with 4 KiB pages the syscalls were most of a commit
// (benchmark B: CreateSegment of 474k members 10.2 s -> 7.3 and 7.4 s in
// two runs, the cold pass's write 36 s -> 30 and 33.5 s). The feed
// follower's small commits write more bytes each, which did not move the
// freshness benchmark (p99 6.7 ms both ways); a warm pass's write of a few
// thousand scattered records is the same, and the first after opening the
// file took 0.44 and 0.77 s against 0.24-0.29 s.
func Options() boltdb.Options {
	return boltdb.Options{Schema: SchemaVersion, PageSize: 16 << 10, Buckets: append([][]byte{
		bucketStates, bucketProfiles, bucketScores, bucketSettings, bucketSegments, bucketMembers,
		bucketMemberOf, bucketHistory, bucketSizes, bucketTimers, bucketTimerOf,
	}, append(valueBuckets, feed.Buckets...)...), Migrations: []boltdb.Migration{
		{From: 1, Up: binaryStates},
	}}
}

// binaryStates re-encodes the JSON states of a version 1 file in the binary
// encoding.
func binaryStates(tx *bolt.Tx) error {
	return boltdb.RewriteValues(tx, bucketStates, 10000, func(k, v []byte) ([]byte, error) {
		st, err := boltdb.GetJSON[domain.State](v)
		if err != nil {
			return nil, fmt.Errorf("state %q: %w", k, err)
		}
		raw, err := st.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("state %q: %w", k, err)
		}
		return raw, nil
	})
}
