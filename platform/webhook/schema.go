package webhook

import (
	"encoding/binary"
	"fmt"
	"time"

	"rapport.dev/platform/boltdb"
)

// Buckets used by the outbox; a service using it adds Buckets to its
// boltdb.Options.Buckets.
//
//	webhook_outbox      tenant 0x00 id -> record (JSON): a pending message
//	webhook_due         due (8, big-endian UnixNano) ‖ seq (8, big-endian) -> tenant 0x00 id
//	webhook_delivered   tenant 0x00 id -> deliveredRecord (JSON)
//	webhook_dead        tenant 0x00 id -> deadRecord (JSON)
//
// Every pending message has exactly one webhook_due entry, named by its
// record's DueKey; the sequence (the due bucket's NextSequence) keeps
// messages due at the same instant in the order they were scheduled. A
// message id is in at most one of outbox, delivered and dead.
var (
	OutboxBucket    = []byte("webhook_outbox")
	DueBucket       = []byte("webhook_due")
	DeliveredBucket = []byte("webhook_delivered")
	DeadBucket      = []byte("webhook_dead")
	Buckets         = [][]byte{OutboxBucket, DueBucket, DeliveredBucket, DeadBucket}
)

// record is a pending message.
type record struct {
	Message     Message   `json:"message"`
	Attempts    int       `json:"attempts"`
	DueKey      []byte    `json:"due_key"`
	NextAttempt time.Time `json:"next_attempt"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
}

// deliveredRecord is what is kept of a delivered message.
type deliveredRecord struct {
	EventType   string    `json:"event_type"`
	CreatedAt   time.Time `json:"created_at"`
	Attempts    int       `json:"attempts"`
	LastStatus  int       `json:"last_status"`
	DeliveredAt time.Time `json:"delivered_at"`
}

// deadRecord is a message the outbox gave up on.
type deadRecord struct {
	Message    Message   `json:"message"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	DiedAt     time.Time `json:"died_at"`
}

func messageKey(tenant, id string) []byte { return boltdb.Key(tenant, id) }

func dueKey(due time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k[:8], uint64(due.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func dueTime(k []byte) (time.Time, error) {
	if len(k) != 16 {
		return time.Time{}, fmt.Errorf("webhook: malformed due key %x", k)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), nil
}
