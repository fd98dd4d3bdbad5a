// Package audit keeps a service's audit log: one entry per change made
// through its API, with the actor, the tenant and the time, written in the
// same bbolt transaction as the change (platform/boltdb writes the record
// the request context carries), so an acknowledged change always has its
// entry and a rolled-back one has none.
//
// A call that writes in several transactions leaves one entry per
// transaction. A retried call that changes nothing (an idempotent replay)
// still leaves an entry: the log records what callers did.
package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/tenancy"
)

// Bucket holds the entries, keyed by an 8-byte big-endian sequence.
var Bucket = []byte("audit")

// Record describes the change a call makes.
type Record struct {
	Time    time.Time
	Tenant  string
	Actor   string
	Method  string
	TraceID string
}

type ctxKey struct{}

// WithRecord returns ctx carrying rec: the writes made under ctx are audited.
func WithRecord(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, ctxKey{}, rec)
}

// FromContext returns the record ctx carries, if any.
func FromContext(ctx context.Context) *Record {
	rec, _ := ctx.Value(ctxKey{}).(*Record)
	return rec
}

// Put appends rec to the log in tx.
func Put(tx *bolt.Tx, rec *Record) error {
	b, err := tx.CreateBucketIfNotExists(Bucket)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	v, err := proto.Marshal(&auditv1.AuditEvent{Time: timestamppb.New(rec.Time), Tenant: rec.Tenant,
		Actor: rec.Actor, Method: rec.Method, TraceId: rec.TraceID})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// Viewer runs read transactions: the service's *boltdb.DB.
type Viewer interface {
	View(func(*bolt.Tx) error) error
}

// Server serves a service's audit log.
type Server struct {
	auditv1.UnimplementedAuditServiceServer
	DB Viewer
}

// ListAuditEvents lists the caller's tenant's entries, newest first. The log
// is shared by tenants, so a page scans at most scanLimit entries; a page
// may then be short, with a token to go on.
func (s *Server) ListAuditEvents(ctx context.Context, req *auditv1.ListAuditEventsRequest) (*auditv1.ListAuditEventsResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > 1000:
		return nil, fault.InvalidField("page_size", "must be 0-1000")
	case size == 0:
		size = 100
	}
	before := uint64(0) // 0: from the newest
	if req.GetPageToken() != "" {
		before, err = strconv.ParseUint(req.GetPageToken(), 10, 64)
		if err != nil || before == 0 {
			return nil, fault.InvalidField("page_token", "is not a token this call returned")
		}
	}
	const scanLimit = 100_000
	resp := &auditv1.ListAuditEventsResponse{}
	err = s.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(Bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(binary.BigEndian.AppendUint64(nil, before))
			k, v = c.Prev()
		}
		scanned := 0
		for ; k != nil; k, v = c.Prev() {
			seq := binary.BigEndian.Uint64(k)
			if len(resp.AuditEvents) == size || scanned == scanLimit {
				resp.NextPageToken = strconv.FormatUint(seq+1, 10)
				return nil
			}
			scanned++
			ev := &auditv1.AuditEvent{}
			if err := proto.Unmarshal(v, ev); err != nil {
				return fmt.Errorf("audit: entry %d: %w", seq, err)
			}
			if ev.Tenant != tenant {
				continue
			}
			ev.Sequence = seq
			resp.AuditEvents = append(resp.AuditEvents, ev)
		}
		return nil
	})
	return resp, err
}
