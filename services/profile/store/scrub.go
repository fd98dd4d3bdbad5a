package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/convert"
)

// An erasure tombstones the customer record and its timeline in its own
// transaction, but the change feed still holds every earlier snapshot of the
// customer and the unscrubbed texts of its events. Rewriting them there would
// hold the single writer for a scan of the whole feed, so the erase records a
// pending scrub in feed_scrubs and ScrubFeed works through it in bounded
// transactions, resuming from the recorded position after a restart.

// pendingScrub is a feed_scrubs value: the next feed sequence to look at and
// the last one to rewrite (the entry before the erase's customer.erased).
type pendingScrub struct {
	next, upto uint64
}

func (p pendingScrub) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, p.next)
	binary.BigEndian.PutUint64(b[8:], p.upto)
	return b
}

func decodeScrub(v []byte) (pendingScrub, error) {
	if len(v) != 16 {
		return pendingScrub{}, fmt.Errorf("malformed feed_scrubs value of %d bytes", len(v))
	}
	return pendingScrub{next: binary.BigEndian.Uint64(v), upto: binary.BigEndian.Uint64(v[8:])}, nil
}

// addFeedScrub records, inside the erase transaction, that the feed entries
// of the customer up to the current end of the feed must be scrubbed. A scrub
// still pending for the same customer is widened, not restarted.
func (t *tx) addFeedScrub(id string) error {
	upto := t.b(feed.LogBucket).Sequence()
	if upto == 0 {
		return nil
	}
	b := t.b(bucketFeedScrubs)
	key := boltdb.Key(t.tenant, id)
	p := pendingScrub{next: 1, upto: upto}
	if v := b.Get(key); v != nil {
		old, err := decodeScrub(v)
		if err != nil {
			return err
		}
		p.next = old.next
	}
	return b.Put(key, p.encode())
}

// ScrubSignal fires (it is buffered, of size 1) after an erase commits: there
// is feed to scrub.
func (s *Store) ScrubSignal() <-chan struct{} { return s.scrubs }

func (s *Store) signalScrub() {
	select {
	case s.scrubs <- struct{}{}:
	default:
	}
}

// ScrubFeed rewrites, in one write transaction, up to maxEntries feed
// entries of the pending scrubs: customer snapshots of an erased customer
// become its erased form, and the texts of its recorded events are removed.
// Sequence, type, key, time and trace context stay, so followers' cursors
// remain valid. It reports whether scrubs are still pending.
func (s *Store) ScrubFeed(ctx context.Context, maxEntries int) (remaining bool, err error) {
	if maxEntries < 1 {
		return false, fmt.Errorf("ScrubFeed: maxEntries %d, want at least 1", maxEntries)
	}
	err = s.db.Update(ctx, func(btx *bolt.Tx) error {
		remaining = false // the function may run more than once
		btx.Bucket(feed.LogBucket).FillPercent = feedFillPercent
		scrubs := btx.Bucket(bucketFeedScrubs)
		var keys [][]byte
		var pending []pendingScrub
		if err := scrubs.ForEach(func(k, v []byte) error {
			p, err := decodeScrub(v)
			if err != nil {
				return err
			}
			keys, pending = append(keys, boltdb.Copy(k)), append(pending, p)
			return nil
		}); err != nil {
			return err
		}
		budget := uint64(maxEntries)
		for i, p := range pending {
			if budget == 0 {
				remaining = true
				break
			}
			tenant, id, ok := bytes.Cut(keys[i], []byte{boltdb.Sep})
			if !ok {
				return fmt.Errorf("malformed feed_scrubs key %q", keys[i])
			}
			if p.next > p.upto { // nothing left; not written so, but never loop on it
				if err := scrubs.Delete(keys[i]); err != nil {
					return err
				}
				continue
			}
			last := min(p.upto, p.next+budget-1)
			if err := scrubRange(btx.Bucket(feed.LogBucket), string(tenant), string(id), p.next, last); err != nil {
				return err
			}
			if last >= p.upto {
				if err := scrubs.Delete(keys[i]); err != nil {
					return err
				}
			} else {
				remaining = true
				if err := scrubs.Put(keys[i], pendingScrub{next: last + 1, upto: p.upto}.encode()); err != nil {
					return err
				}
			}
			budget -= last - p.next + 1
		}
		return nil
	})
	return remaining, err
}

// scrubRange rewrites the entries of the customer between sequences from and
// to, both included. Rewrites are collected first: a bucket must not change
// under its own cursor.
func scrubRange(log *bolt.Bucket, tenant, id string, from, to uint64) error {
	var seqs, vals [][]byte
	c := log.Cursor()
	for k, v := c.Seek(boltdb.U64(from)); k != nil; k, v = c.Next() {
		seq, err := boltdb.ReadU64(k)
		if err != nil {
			return err
		}
		if seq > to {
			break
		}
		// Protobuf strings are stored verbatim: an entry about the customer
		// contains its id. Most entries are skipped without decoding.
		if !bytes.Contains(v, []byte(id)) {
			continue
		}
		nv, err := scrubEntry(v, tenant, id)
		if err != nil {
			return fmt.Errorf("scrub feed entry %d: %w", seq, err)
		}
		if nv != nil {
			seqs, vals = append(seqs, boltdb.Copy(k)), append(vals, nv)
		}
	}
	for i := range seqs {
		if err := log.Put(seqs[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// scrubEntry returns the scrubbed encoding of a feed entry about the
// customer, or nil when the entry is not about it or has nothing to scrub.
func scrubEntry(raw []byte, tenant, id string) ([]byte, error) {
	ev := &feedv1.Event{}
	if err := proto.Unmarshal(raw, ev); err != nil {
		return nil, err
	}
	if ev.GetTenant() != tenant || ev.GetPayload() == nil {
		return nil, nil
	}
	var orig, scrubbed proto.Message
	switch {
	case ev.GetType() == TypeEventRecorded:
		p := &profilev1.Event{}
		if err := ev.GetPayload().UnmarshalTo(p); err != nil {
			return nil, err
		}
		if p.GetCustomerId() != id {
			return nil, nil
		}
		e := convert.EventFromProto(p)
		e.ScrubText()
		out := convert.EventToProto(e)
		out.RecordTime = p.GetRecordTime() // output only: EventFromProto dropped it
		orig, scrubbed = p, out
	case strings.HasPrefix(ev.GetType(), "customer.") && ev.GetKey() == id:
		p := &profilev1.Customer{}
		if err := ev.GetPayload().UnmarshalTo(p); err != nil {
			return nil, err
		}
		c := convert.CustomerFromProto(p)
		c.Erase(p.GetUpdateTime().AsTime())
		out := convert.CustomerToProto(c)
		// The snapshot keeps its place in history: the output fields stay
		// as they were, erased included (the customer.erased entry tells
		// followers when the erasure happened).
		out.CreateTime, out.UpdateTime = p.GetCreateTime(), p.GetUpdateTime()
		out.Etag, out.Erased, out.MergedInto = p.GetEtag(), p.GetErased(), p.GetMergedInto()
		orig, scrubbed = p, out
	default:
		return nil, nil
	}
	if proto.Equal(orig, scrubbed) { // already scrubbed, or nothing personal
		return nil, nil
	}
	payload, err := anypb.New(scrubbed)
	if err != nil {
		return nil, err
	}
	ev.Payload = payload
	return proto.MarshalOptions{Deterministic: true}.Marshal(ev)
}
