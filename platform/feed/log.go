// Package feed is Rapport's durable change feed, the way services learn what
// happened in other services.
//
// The producer side, Log, appends events to the "feed" bucket of the
// service's own bbolt file inside the same transaction as the write that
// caused them: an event exists if and only if its write committed, and
// sequence numbers follow commit order without gaps. Serve streams them from a
// cursor to followers over gRPC and waits for more.
//
// The consumer side, Follower, reads another service's feed and applies each
// event to its own bbolt file in a transaction that also stores the cursor,
// so after any crash it resumes exactly after the last applied event: every
// event takes effect once. Events carry the W3C trace context of the request
// that caused them; the follower's work is a child span of it, so one trace
// shows the request and everything it set off in other services.
package feed

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/tenancy"
)

// Buckets used by this package; a service using the feed adds them to its
// boltdb.Options.Buckets.
//
//	feed              seq (8 bytes, big-endian) -> feedv1.Event (protobuf)
//	feed_cursors      follower name -> last applied seq (8 bytes, big-endian)
//	feed_deadletters  follower name 0x00 seq -> feedv1.DeadLetter-like record (error text)
var (
	LogBucket        = []byte("feed")
	CursorBucket     = []byte("feed_cursors")
	DeadLetterBucket = []byte("feed_deadletters")
	Buckets          = [][]byte{LogBucket, CursorBucket, DeadLetterBucket}
)

// readBatch is how many events Serve reads per read transaction.
const readBatch = 512

// Log is the producer side of a service's feed.
type Log struct {
	db    *boltdb.DB
	clock clock.Clock

	mu   sync.Mutex
	wake chan struct{}
}

// NewLog returns the feed stored in db.
func NewLog(db *boltdb.DB, clk clock.Clock) *Log {
	l := &Log{db: db, clock: clk, wake: make(chan struct{})}
	db.OnCommit(l.notify)
	return l
}

func (l *Log) notify() {
	l.mu.Lock()
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

func (l *Log) waitChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// Append adds an event to the feed inside tx, the transaction of the write
// that caused it. ctx supplies the trace context carried by the event.
func (l *Log) Append(ctx context.Context, tx *bolt.Tx, tenant, typ, key string, payload proto.Message) (uint64, error) {
	p, err := l.Prepare(ctx, tenant, typ, key, payload)
	if err != nil {
		return 0, err
	}
	return l.AppendPrepared(tx, p)
}

// Prepared is a feed event encoded ahead of its transaction: everything but
// its sequence number, which only the transaction can assign.
type Prepared struct {
	raw []byte
}

// Prepare encodes an event outside the write transaction, so the encoding is
// not done inside the serialized commit every writer waits on. The event's
// time is taken now.
func (l *Log) Prepare(ctx context.Context, tenant, typ, key string, payload proto.Message) (Prepared, error) {
	value, err := proto.Marshal(payload)
	if err != nil {
		return Prepared{}, fmt.Errorf("feed: payload: %w", err)
	}
	return l.prepare(ctx, tenant, typ, key, typeURLPrefix+string(payload.ProtoReflect().Descriptor().FullName()), value), nil
}

// typeURLPrefix is what anypb.New puts before a message's full name.
const typeURLPrefix = "type.googleapis.com/"

// PrepareAny is Prepare for a payload the caller has already encoded, so
// that a producer that also stores the encoded message (as the profile
// store does its events) encodes it once.
func (l *Log) PrepareAny(ctx context.Context, tenant, typ, key string, any *anypb.Any) (Prepared, error) {
	return l.prepare(ctx, tenant, typ, key, any.GetTypeUrl(), any.GetValue()), nil
}

// prepare encodes a feedv1.Event (without its sequence) field by field: it
// is on every write of every service, and building the message to
// marshal it through reflection cost more than the write's own record.
// TestPreparedEventDecodes holds it to the generated message.
func (l *Log) prepare(ctx context.Context, tenant, typ, key, typeURL string, value []byte) Prepared {
	var tc traceCarrier
	telemetry.Propagator.Inject(ctx, &tc)
	at := l.clock.Now()
	size := 48 + len(tenant) + len(typ) + len(key) + len(typeURL) + len(value)
	for _, kv := range tc {
		size += 8 + len(kv)
	}
	b := make([]byte, 0, size)
	b = appendString(b, eventTenantField, tenant)
	b = appendString(b, eventTypeField, typ)
	b = appendString(b, eventKeyField, key)
	// google.protobuf.Timestamp: seconds = 1, nanos = 2.
	var ts []byte
	if sec := at.Unix(); sec != 0 {
		ts = protowire.AppendVarint(protowire.AppendTag(ts, 1, protowire.VarintType), uint64(sec))
	}
	if nsec := at.Nanosecond(); nsec != 0 {
		ts = protowire.AppendVarint(protowire.AppendTag(ts, 2, protowire.VarintType), uint64(nsec))
	}
	b = protowire.AppendBytes(protowire.AppendTag(b, eventTimeField, protowire.BytesType), ts)
	// google.protobuf.Any: type_url = 1, value = 2.
	b = protowire.AppendTag(b, eventPayloadField, protowire.BytesType)
	anyLen := 0
	if typeURL != "" {
		anyLen += protowire.SizeTag(1) + protowire.SizeBytes(len(typeURL))
	}
	if len(value) != 0 {
		anyLen += protowire.SizeTag(2) + protowire.SizeBytes(len(value))
	}
	b = protowire.AppendVarint(b, uint64(anyLen))
	b = appendString(b, 1, typeURL)
	if len(value) != 0 {
		b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), value)
	}
	// map<string, string> trace_context: one entry message (key = 1,
	// value = 2) per pair.
	for i := 0; i+1 < len(tc); i += 2 {
		k, v := tc[i], tc[i+1]
		b = protowire.AppendTag(b, eventTraceContextField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(protowire.SizeTag(1)+protowire.SizeBytes(len(k))+protowire.SizeTag(2)+protowire.SizeBytes(len(v))))
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), k)
		b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), v)
	}
	return Prepared{raw: b}
}

// feedv1.Event's field numbers.
const (
	eventTenantField       = 2
	eventTypeField         = 3
	eventKeyField          = 4
	eventTimeField         = 5
	eventPayloadField      = 6
	eventTraceContextField = 7
)

// appendString appends a string field, omitted when empty as proto3 does.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// traceCarrier collects what the propagator injects as key, value pairs,
// in order, without a map.
type traceCarrier []string

func (c *traceCarrier) Get(key string) string {
	for i := 0; i+1 < len(*c); i += 2 {
		if (*c)[i] == key {
			return (*c)[i+1]
		}
	}
	return ""
}

func (c *traceCarrier) Set(key, value string) {
	for i := 0; i+1 < len(*c); i += 2 {
		if (*c)[i] == key {
			(*c)[i+1] = value
			return
		}
	}
	*c = append(*c, key, value)
}

func (c *traceCarrier) Keys() []string {
	keys := make([]string, 0, len(*c)/2)
	for i := 0; i < len(*c); i += 2 {
		keys = append(keys, (*c)[i])
	}
	return keys
}

// AppendPrepared adds a prepared event inside tx and returns its sequence.
// The sequence field is appended to the encoded event: protobuf decoders
// accept fields in any order.
func (l *Log) AppendPrepared(tx *bolt.Tx, p Prepared) (uint64, error) {
	b := tx.Bucket(LogBucket)
	seq, err := b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("feed: sequence: %w", err)
	}
	raw := make([]byte, 0, len(p.raw)+10)
	raw = append(raw, p.raw...)
	raw = protowire.AppendTag(raw, sequenceField, protowire.VarintType)
	raw = protowire.AppendVarint(raw, seq)
	if err := b.Put(boltdb.U64(seq), raw); err != nil {
		return 0, fmt.Errorf("feed: put: %w", err)
	}
	return seq, nil
}

// sequenceField is feedv1.Event's sequence field number.
const sequenceField = 1

// Read returns up to limit events after sequence after, of tenant (or of
// every tenant when tenant is tenancy.All).
func (l *Log) Read(tenant string, after uint64, limit int) ([]*feedv1.Event, error) {
	evs, _, err := l.read(tenant, after, limit)
	return evs, err
}

// read also returns the last sequence it looked at, so a filtered reader
// does not scan other tenants' events again.
func (l *Log) read(tenant string, after uint64, limit int) ([]*feedv1.Event, uint64, error) {
	var out []*feedv1.Event
	scanned := after
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(LogBucket).Cursor()
		for k, v := c.Seek(boltdb.U64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			seq, err := boltdb.ReadU64(k)
			if err != nil {
				return err
			}
			scanned = seq
			if tenant != tenancy.All && !tenantIs(v, tenant) {
				continue
			}
			ev := &feedv1.Event{}
			if err := proto.Unmarshal(v, ev); err != nil {
				return fmt.Errorf("feed: decode event %d: %w", seq, err)
			}
			if tenant != tenancy.All && ev.Tenant != tenant {
				continue
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, scanned, err
}

// tenantIs is a cheap pre-filter: the encoded event contains the tenant id
// as a length-prefixed string. A false positive is caught by the full decode.
func tenantIs(raw []byte, tenant string) bool {
	return bytes.Contains(raw, []byte(tenant))
}

// Last returns the sequence of the newest event, 0 when the feed is empty.
func (l *Log) Last() (uint64, error) {
	var seq uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		seq = tx.Bucket(LogBucket).Sequence()
		return nil
	})
	return seq, err
}

// Head metadata: a FollowChanges stream of every tenant (a service
// following another) starts with response headers naming the newest event
// at subscription, its sequence and its commit time (RFC 3339), so the
// follower knows how far behind it is before it has received anything.
// A single tenant's stream does not get them: they count other tenants'
// events.
const (
	HeadSequenceHeader = "rapport-feed-head-sequence"
	HeadTimeHeader     = "rapport-feed-head-time"
)

// head returns the newest event's sequence and commit time (zero when the
// feed is empty or that event was removed).
func (l *Log) head() (uint64, time.Time, error) {
	var seq uint64
	var at time.Time
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(LogBucket)
		seq = b.Sequence()
		if v := b.Get(boltdb.U64(seq)); v != nil {
			ev := &feedv1.Event{}
			if err := proto.Unmarshal(v, ev); err != nil {
				return fmt.Errorf("feed: decode event %d: %w", seq, err)
			}
			at = ev.GetTime().AsTime()
		}
		return nil
	})
	return seq, at, err
}

// sendHead sends the head metadata on ctx's gRPC server stream; outside
// one (a test, an in-process reader) there is nowhere to send it.
func (l *Log) sendHead(ctx context.Context) error {
	seq, at, err := l.head()
	if err != nil {
		return err
	}
	md := metadata.Pairs(HeadSequenceHeader, strconv.FormatUint(seq, 10))
	if !at.IsZero() {
		md.Set(HeadTimeHeader, at.UTC().Format(time.RFC3339Nano))
	}
	// An error means not a gRPC stream, or one already gone, which the
	// first send notices.
	_ = grpc.SendHeader(ctx, md)
	return nil
}

// Serve sends the events of tenant after sequence after, in order, through
// send. When it has caught up it returns if wait is false, and otherwise
// waits for new commits until ctx ends. A stream of every tenant starts
// with the head metadata (HeadSequenceHeader).
func (l *Log) Serve(ctx context.Context, tenant string, after uint64, wait bool, send func(*feedv1.Event) error) error {
	if tenant == tenancy.All {
		if err := l.sendHead(ctx); err != nil {
			return err
		}
	}
	for {
		// Take the wake channel before reading so a commit between the read
		// and the wait is not missed.
		woken := l.waitChan()
		evs, scanned, err := l.read(tenant, after, readBatch)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
		}
		if scanned > after {
			// More may have been committed meanwhile: read again before waiting.
			after = scanned
			continue
		}
		if !wait {
			return nil
		}
		select {
		case <-woken:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
