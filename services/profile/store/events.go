package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/convert"
	"rapport.dev/services/profile/domain"
)

// encodedEvent is an event encoded for storage and for the feed.
type encodedEvent struct {
	raw  []byte
	feed feed.Prepared
}

// encodeEvent marshals the event once: the same bytes are its timeline
// record and its feed entry's payload.
func (s *Store) encodeEvent(ctx context.Context, tenant string, e *domain.Event) (encodedEvent, error) {
	p := convert.EventToProto(e)
	raw, err := marshalEvent(p)
	if err != nil {
		return encodedEvent{}, err
	}
	payload := &anypb.Any{TypeUrl: eventTypeURL, Value: raw}
	fp, err := s.feed.PrepareAny(ctx, tenant, TypeEventRecorded, e.CustomerID, payload)
	if err != nil {
		return encodedEvent{}, err
	}
	return encodedEvent{raw: raw, feed: fp}, nil
}

// eventTypeURL is what anypb.New names a profilev1.Event.
var eventTypeURL = "type.googleapis.com/" + string((*profilev1.Event)(nil).ProtoReflect().Descriptor().FullName())

// marshalEvent is the timeline record of an event (schema 5): the API's
// message, record_time included.
func marshalEvent(p *profilev1.Event) ([]byte, error) {
	raw, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("store: encode event: %w", err)
	}
	return raw, nil
}

// putEvent stores e as its timeline record under key.
func putEvent(b *bolt.Bucket, key []byte, e *domain.Event) error {
	raw, err := marshalEvent(convert.EventToProto(e))
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// decodeEvent reads a timeline record.
func decodeEvent(raw []byte) (*domain.Event, error) {
	var p profilev1.Event
	if err := proto.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("store: decode event: %w", err)
	}
	e := convert.EventFromProto(&p)
	if ts := p.GetRecordTime(); ts != nil {
		e.RecordTime = ts.AsTime()
	}
	return e, nil
}

// customerMeta reads only what recording an event needs of a customer
// (whether it was merged away, and whether it came by referral, for the
// tenant counters), from customer_meta instead of parsing the record.
func (t *tx) customerMeta(id string) (*domain.Customer, error) {
	v := t.b(bucketMeta).Get(boltdb.Key(t.tenant, id))
	if len(v) == 0 {
		return nil, fmt.Errorf("customer %q: %w", id, fault.ErrNotFound)
	}
	return decodeMeta(id, v), nil
}

// timeline returns the keys (copied) and records of a customer's timeline.
func (t *tx) timeline(customerID string) ([][]byte, []*domain.Event, error) {
	var keys [][]byte
	var evs []*domain.Event
	prefix := timelinePrefix(t.tenant, customerID)
	c := t.b(bucketCustomerData).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		e, err := decodeEvent(v)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, boltdb.Copy(k))
		evs = append(evs, e)
	}
	return keys, evs, nil
}

// retryOf reports whether e is a retry of the stored event. The store may
// have changed the stored copy since: a merge moves it to the customer its
// own was merged into, and an erasure scrubs its text. A retry sent after
// either is still the same record and must be acknowledged, not refused.
func (t *tx) retryOf(stored, e *domain.Event) (bool, error) {
	if domain.SameEvent(stored, e) {
		return true, nil
	}
	cp := *e
	// Follow the merges from the customer the client named; each step is a
	// merge that happened, so the chain ends (the bound guards a bad file).
	for i := 0; cp.CustomerID != stored.CustomerID && i < 64; i++ {
		raw := t.b(bucketCustomers).Get(boltdb.Key(t.tenant, cp.CustomerID))
		if raw == nil {
			return false, nil
		}
		c, err := decodeCustomer(raw)
		if err != nil {
			return false, err
		}
		if c.MergedInto == "" {
			return false, nil
		}
		cp.CustomerID = c.MergedInto
	}
	if domain.SameEvent(stored, &cp) {
		return true, nil
	}
	owner, err := t.customer(stored.CustomerID)
	if err != nil || !owner.Erased {
		return false, err
	}
	// ScrubText writes through the kind pointer: scrub a deep copy.
	raw, err := json.Marshal(&cp)
	if err != nil {
		return false, fmt.Errorf("store: encode event: %w", err)
	}
	scrubbed, err := decode[domain.Event](raw)
	if err != nil {
		return false, err
	}
	scrubbed.ScrubText()
	return domain.SameEvent(stored, scrubbed), nil
}

// recordOne appends one event inside t. Item-level failures are returned as
// the result's error, not as the transaction's.
func (s *Store) recordOne(ctx context.Context, t *tx, e *domain.Event, enc encodedEvent, customers map[string]*domain.Customer) (domain.RecordResult, error) {
	if idx := t.b(bucketEventIDs).Get(boltdb.Key(t.tenant, e.ID)); idx != nil {
		stored, err := decodeEvent(t.b(bucketCustomerData).Get(idx))
		if err != nil {
			return domain.RecordResult{}, err
		}
		same, err := t.retryOf(stored, e)
		if err != nil {
			return domain.RecordResult{}, err
		}
		if !same {
			return domain.RecordResult{Err: fmt.Errorf("event_id %q was already used for a different record: %w", e.ID, fault.ErrAlreadyExists)}, nil
		}
		return domain.RecordResult{Event: stored}, nil
	}
	c := customers[e.CustomerID]
	if c == nil {
		var err error
		c, err = t.customerMeta(e.CustomerID)
		if err != nil {
			return domain.RecordResult{Err: err}, nil
		}
		customers[e.CustomerID] = c
	}
	if c.MergedInto != "" {
		return domain.RecordResult{Err: fmt.Errorf("customer %q was merged into %q; record on that customer: %w",
			c.ID, c.MergedInto, fault.ErrFailedPrecondition)}, nil
	}
	data := t.b(bucketCustomerData)
	switch {
	case e.Purchase != nil:
		key := orderKey(t.tenant, e.CustomerID, e.Purchase.OrderID)
		if raw := data.Get(key); raw != nil {
			o, err := decodeOrder(raw)
			if err != nil {
				return domain.RecordResult{}, err
			}
			return domain.RecordResult{Err: fmt.Errorf("purchase.order_id %q was already recorded by event %q: %w",
				e.Purchase.OrderID, o.EventID, fault.ErrAlreadyExists)}, nil
		}
		o := domain.Order{OrderID: e.Purchase.OrderID, EventID: e.ID, Amount: e.Purchase.Amount}
		if err := data.Put(key, o.AppendBinary(nil)); err != nil {
			return domain.RecordResult{}, err
		}
	case e.Refund != nil:
		key := orderKey(t.tenant, e.CustomerID, e.Refund.OrderID)
		var o *domain.Order
		if raw := data.Get(key); raw != nil {
			var err error
			if o, err = decodeOrder(raw); err != nil {
				return domain.RecordResult{}, err
			}
		}
		if err := domain.CheckRefund(o, e.CustomerID, e.Refund); err != nil {
			return domain.RecordResult{Err: err}, nil
		}
		o.Refunded += e.Refund.Amount.Minor
		if err := data.Put(key, o.AppendBinary(nil)); err != nil {
			return domain.RecordResult{}, err
		}
	}
	seq, err := data.NextSequence()
	if err != nil {
		return domain.RecordResult{}, err
	}
	key := eventKey(t.tenant, e.CustomerID, e.OccurTime, boltdb.U64(seq))
	if err := data.Put(key, enc.raw); err != nil {
		return domain.RecordResult{}, err
	}
	if err := t.b(bucketEventIDs).Put(boltdb.Key(t.tenant, e.ID), key); err != nil {
		return domain.RecordResult{}, err
	}
	st, err := t.stats(e.CustomerID)
	if err != nil {
		return domain.RecordResult{}, err
	}
	ts, err := t.tenantStats()
	if err != nil {
		return domain.RecordResult{}, err
	}
	// Add reads st as it is now: remove the old contribution, count, add back.
	ts.Add(c, st, -1)
	st.Apply(e)
	ts.Add(c, st, 1)
	if _, err := s.feed.AppendPrepared(t.tx, enc.feed); err != nil {
		return domain.RecordResult{}, err
	}
	return domain.RecordResult{Event: e, Created: true}, nil
}

// RecordEvents implements domain.Repository: the whole batch is one durable
// commit, and each item succeeds or fails on its own.
func (s *Store) RecordEvents(ctx context.Context, tenant string, evs []*domain.Event) ([]domain.RecordResult, error) {
	// Encoding happens here, in the caller's goroutine, not in the commit
	// that every writer waits on.
	encs := make([]encodedEvent, len(evs))
	for i, e := range evs {
		var err error
		if encs[i], err = s.encodeEvent(ctx, tenant, e); err != nil {
			return nil, err
		}
	}
	var results []domain.RecordResult
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := s.writeTx(btx, tenant)
		results = make([]domain.RecordResult, len(evs))
		customers := map[string]*domain.Customer{}
		for i, e := range evs {
			r, err := s.recordOne(ctx, t, e, encs[i], customers)
			if err != nil {
				return err
			}
			results[i] = r
		}
		return nil
	})
	return results, err
}

// GetEvent implements domain.Repository.
func (s *Store) GetEvent(ctx context.Context, tenant, id string) (*domain.Event, error) {
	var e *domain.Event
	err := s.db.View(func(btx *bolt.Tx) error {
		idx := btx.Bucket(bucketEventIDs).Get(boltdb.Key(tenant, id))
		if idx == nil {
			return fmt.Errorf("event %q: %w", id, fault.ErrNotFound)
		}
		var err error
		e, err = decodeEvent(btx.Bucket(bucketCustomerData).Get(idx))
		return err
	})
	return e, err
}

// ListEvents implements domain.Repository.
func (s *Store) ListEvents(ctx context.Context, tenant, customerID string, kind domain.EventKind, p domain.Page) ([]*domain.Event, string, error) {
	var out []*domain.Event
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		if _, err := newTx(btx, tenant).customer(customerID); err != nil {
			return err
		}
		var err error
		next, err = scan(btx.Bucket(bucketCustomerData).Cursor(), timelinePrefix(tenant, customerID), p.Token, func(k, v []byte) (bool, error) {
			e, err := decodeEvent(v)
			if err != nil {
				return false, err
			}
			if kind == domain.EventUnspecified || e.Kind() == kind {
				out = append(out, e)
			}
			return len(out) < p.Size, nil
		})
		return err
	})
	return out, next, err
}

// Stats implements domain.Repository.
func (s *Store) Stats(ctx context.Context, tenant, customerID string) (*domain.Stats, error) {
	var st *domain.Stats
	err := s.db.View(func(btx *bolt.Tx) error {
		t := newTx(btx, tenant)
		if _, err := t.customer(customerID); err != nil {
			return err
		}
		var err error
		st, err = t.stats(customerID)
		return err
	})
	return st, err
}

// TenantStats implements domain.Repository.
func (s *Store) TenantStats(ctx context.Context, tenant string) (*domain.TenantStats, error) {
	var st *domain.TenantStats
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		st, err = newTx(btx, tenant).tenantStats()
		return err
	})
	return st, err
}

// Merge implements domain.Repository.
func (s *Store) Merge(ctx context.Context, tenant, targetID, srcID string, now time.Time) (*domain.Customer, int64, error) {
	var out *domain.Customer
	var moved int64
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		moved = 0
		t := s.writeTx(btx, tenant)
		target, err := t.customer(targetID)
		if err != nil {
			return err
		}
		src, err := t.customer(srcID)
		if err != nil {
			return err
		}
		if src.MergedInto == targetID {
			out = target // a retry of a merge that already happened
			return nil
		}
		if err := domain.CheckMerge(target, src); err != nil {
			return err
		}
		// Orders move with their purchases; two orders with one id would make
		// refunds ambiguous, so that merge is refused.
		data := t.b(bucketCustomerData)
		type kv struct{ k, v []byte }
		var srcOrders []kv
		prefix := ordersPrefix(tenant, srcID)
		oc := data.Cursor()
		for k, v := oc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = oc.Next() {
			orderID := string(k[len(prefix):])
			if data.Get(orderKey(tenant, targetID, orderID)) != nil {
				return fmt.Errorf("both customers have an order %q: %w", orderID, fault.ErrFailedPrecondition)
			}
			srcOrders = append(srcOrders, kv{boltdb.Copy(k), boltdb.Copy(v)})
		}
		for _, o := range srcOrders {
			if err := data.Delete(o.k); err != nil {
				return err
			}
			if err := data.Put(orderKey(tenant, targetID, string(o.k[len(prefix):])), o.v); err != nil {
				return err
			}
		}
		keys, evs, err := t.timeline(srcID)
		if err != nil {
			return err
		}
		for i, e := range evs {
			if err := data.Delete(keys[i]); err != nil {
				return err
			}
			e.CustomerID = targetID
			nk := eventKey(tenant, targetID, e.OccurTime, eventSeq(keys[i]))
			if err := putEvent(data, nk, e); err != nil {
				return err
			}
			if err := t.b(bucketEventIDs).Put(boltdb.Key(tenant, e.ID), nk); err != nil {
				return err
			}
			moved++
		}
		ts, err := t.tenantStats()
		if err != nil {
			return err
		}
		tst, err := t.stats(targetID)
		if err != nil {
			return err
		}
		sst, err := t.stats(srcID)
		if err != nil {
			return err
		}
		ts.Add(target, tst, -1)
		ts.Add(src, sst, -1)
		if err := t.indexDuplicates(target, false); err != nil {
			return err
		}
		if err := t.indexDuplicates(src, false); err != nil {
			return err
		}
		tst.Merge(sst)
		target.MergeFrom(src, now)
		target.Revision++
		src.MergedInto = targetID
		src.UpdateTime = now
		src.Revision++
		ts.Add(target, tst, 1)
		if err := t.indexDuplicates(target, true); err != nil {
			return err
		}
		if err := t.deleteStats(srcID); err != nil {
			return err
		}
		if err := t.putCustomer(src); err != nil {
			return err
		}
		if err := t.putCustomer(target); err != nil {
			return err
		}
		if err := s.publishCustomer(ctx, t, TypeCustomerMerged, src); err != nil {
			return err
		}
		if err := s.publishCustomer(ctx, t, TypeCustomerUpdated, target); err != nil {
			return err
		}
		out = target
		return nil
	})
	return out, moved, err
}

// Duplicates implements domain.Repository.
func (s *Store) Duplicates(ctx context.Context, tenant, customerID string, p domain.Page) ([]domain.DuplicateGroup, string, error) {
	var out []domain.DuplicateGroup
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketDupIndex)
		members := func(match string) []string {
			var ids []string
			prefix := boltdb.Prefix(tenant, match)
			c := b.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				ids = append(ids, string(k[len(prefix):]))
			}
			return ids
		}
		if customerID != "" {
			c, err := newTx(btx, tenant).customer(customerID)
			if err != nil {
				return err
			}
			for _, m := range c.DuplicateKeys() {
				if ids := members(m); len(ids) > 1 {
					out = append(out, domain.DuplicateGroup{Match: m, CustomerIDs: ids})
				}
			}
			return nil
		}
		// Walk match keys in order; a page ends on a match-key boundary.
		prefix := boltdb.Prefix(tenant)
		after, err := startAfter(p.Token, prefix)
		if err != nil {
			return err
		}
		c := b.Cursor()
		k, _ := c.Seek(prefix)
		if after != nil {
			// The token names the first match key not yet returned: resume
			// at it. (Seeking past it lost that group, and with it every
			// match key it is a prefix of, such as phone:12345 → phone:123456.)
			k, _ = c.Seek(after)
		}
		for k != nil && bytes.HasPrefix(k, prefix) {
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, boltdb.Sep)
			if i < 0 {
				return fmt.Errorf("store: malformed duplicate index key %q", k)
			}
			match := string(rest[:i])
			if len(out) == p.Size {
				next = pageToken(boltdb.Key(tenant, match))
				return nil
			}
			if ids := members(match); len(ids) > 1 {
				out = append(out, domain.DuplicateGroup{Match: match, CustomerIDs: ids})
			}
			k, _ = c.Seek(append(boltdb.Prefix(tenant, match), 0xff))
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Match < out[j].Match })
	return out, next, err
}
