package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/services/segmentation/domain"
)

// Segment is a segment as the API sees it.
type Segment = segmentRecord

// SegmentInput is what a client sends to create or change a segment.
type SegmentInput struct {
	ID, Name, Description string
	Kind                  int32
	Rule                  string
}

// CompileRule type-checks a rule, for CreateSegment, UpdateSegment and
// Preview. It does not cache: a rule editor previewing as the user types
// would otherwise grow the cache without bound. Stored rules are cached by
// rule() when they are evaluated.
func (s *Store) CompileRule(src string) (*domain.Rule, error) { return s.env.Compile(src) }

func same(r *segmentRecord, in SegmentInput) bool {
	return r.Name == in.Name && r.Description == in.Description && r.Kind == in.Kind && r.Rule == in.Rule
}

// evaluateAll re-evaluates every customer of the tenant (after a rule was
// created or changed). It runs in the caller's transaction.
func (s *Store) evaluateAll(ctx context.Context, t tx, segs []segmentRecord, now time.Time, reason string) error {
	defer s.metrics.evaluated(ctx, scopeTenant, time.Now())
	var customers []string
	prefix := boltdb.Prefix(t.tenant)
	c := t.b(bucketProfiles).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		customers = append(customers, string(k[len(prefix):]))
	}
	for _, id := range customers {
		if err := s.reevaluate(ctx, t, segs, id, now, reason); err != nil {
			return err
		}
	}
	return nil
}

// CreateSegment stores a segment and computes its membership. A retry with
// the same content returns the stored segment (created false).
//
// A dynamic segment's members are computed by the full re-evaluation
// (reevaluateAll, with the stored scores), after the segment is stored
// with Pending set: it does not hold the writer, and so the feed, for the
// whole tenant. Until it is done the segment shows no members. A create
// cut short (an error, a crash) leaves the segment pending: a retry with
// the same content finishes it, and so does ResumePending at start-up. A
// tenant with a value model is evaluated customer by customer in the
// creating transaction (evaluatesInOne).
func (s *Store) CreateSegment(ctx context.Context, tenant string, in SegmentInput) (*Segment, bool, error) {
	now := s.clock.Now().UTC()
	var out *Segment
	var created bool
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		created = false
		if old, err := t.segment(in.ID); err == nil {
			if !same(old, in) {
				return fmt.Errorf("segment_id %q exists with different content: %w", in.ID, fault.ErrAlreadyExists)
			}
			out = old
			return nil
		}
		rec := segmentRecord{ID: in.ID, Name: in.Name, Description: in.Description, Kind: in.Kind, Rule: in.Rule,
			Created: now, Updated: now, Revision: 1}
		segs, err := t.segments()
		if err != nil {
			return err
		}
		segs = append(segs, rec)
		if in.Kind == kindDynamic {
			inOne, err := s.evaluatesInOne(t)
			if err != nil {
				return err
			}
			if inOne {
				if err := s.evaluateAll(ctx, t, segs, now, "segment created"); err != nil {
					return err
				}
			} else {
				segs[len(segs)-1].Pending = "segment created"
			}
		}
		if err := t.putSegments(segs, nil); err != nil {
			return err
		}
		out, created = &segs[len(segs)-1], true
		return nil
	})
	if err != nil || out.Pending == "" {
		return out, created, err
	}
	if out, err = s.finishPending(ctx, tenant, out.ID, out.Pending); err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// finishPending runs the full re-evaluation a pending segment waits for,
// whatever the caller's context does (an abandoned call leaves the
// segment pending), and returns the segment as it is then.
func (s *Store) finishPending(ctx context.Context, tenant, id, reason string) (*Segment, error) {
	if _, err := s.reevaluateAll(context.WithoutCancel(ctx), tenant, reason, false); err != nil {
		return nil, err
	}
	return s.GetSegment(ctx, tenant, id)
}

// ResumePending finishes the full re-evaluations that pending segments of
// every tenant wait for (a create or a rule change cut short by a crash).
func (s *Store) ResumePending(ctx context.Context) error {
	pending := map[string]string{} // tenant -> a reason
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketSegments).ForEach(func(k, v []byte) error {
			rec, err := decode[segmentRecord](v)
			if err != nil {
				return err
			}
			if rec.Pending != "" {
				tenant, _, _ := bytes.Cut(k, []byte{0})
				pending[string(tenant)] = rec.Pending
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, tenant := range slices.Sorted(maps.Keys(pending)) {
		if _, err := s.reevaluateAll(ctx, tenant, pending[tenant], false); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", tenant, err)) // the others still get theirs
		}
	}
	return errors.Join(errs...)
}

// evaluatesInOne reports whether the tenant's full re-evaluations run
// customer by customer in the caller's transaction: with a value model,
// whose pass keeps no population and so cannot tell what other writers
// did meanwhile, or when a test asks for that reference (perCustomer).
func (s *Store) evaluatesInOne(t tx) (bool, error) {
	if s.perCustomer {
		return true, nil
	}
	settings, err := t.settings()
	if err != nil {
		return false, err
	}
	model, err := t.currentModel(settings)
	return model != nil, err
}

// GetSegment returns one segment.
func (s *Store) GetSegment(ctx context.Context, tenant, id string) (*Segment, error) {
	var out *Segment
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		out, err = tx{Tx: btx, tenant: tenant}.segment(id)
		return err
	})
	return out, err
}

// ListSegments lists segments in id order.
func (s *Store) ListSegments(ctx context.Context, tenant, token string, size int) ([]Segment, string, error) {
	var out []Segment
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		segs, err := tx{Tx: btx, tenant: tenant}.segments()
		if err != nil {
			return err
		}
		start := 0
		if token != "" {
			after, err := base64.RawURLEncoding.DecodeString(token)
			if err != nil {
				return fault.InvalidField("page_token", "is not a token returned by this listing")
			}
			start, _ = slices.BinarySearchFunc(segs, string(after), func(s segmentRecord, id string) int {
				return cmp.Compare(s.ID, id)
			})
			if start < len(segs) && segs[start].ID == string(after) {
				start++
			}
		}
		end := min(start+size, len(segs))
		out = segs[start:end]
		if end < len(segs) {
			next = base64.RawURLEncoding.EncodeToString([]byte(segs[end-1].ID))
		}
		return nil
	})
	return out, next, err
}

// UpdateSegment changes a segment; a changed rule re-evaluates everyone,
// as CreateSegment evaluates a new segment.
func (s *Store) UpdateSegment(ctx context.Context, tenant, id, etag string, change func(*SegmentInput) error) (*Segment, error) {
	now := s.clock.Now().UTC()
	var out *Segment
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		segs, err := t.segments()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(segs, func(r segmentRecord) bool { return r.ID == id })
		if i < 0 {
			return fmt.Errorf("segment %q: %w", id, fault.ErrNotFound)
		}
		rec := &segs[i]
		if etag != "" && etag != Etag(rec.Revision) {
			return fmt.Errorf("segment %q changed since it was read: %w", id, fault.ErrConflict)
		}
		in := SegmentInput{ID: rec.ID, Name: rec.Name, Description: rec.Description, Kind: rec.Kind, Rule: rec.Rule}
		if err := change(&in); err != nil {
			return err
		}
		ruleChanged := in.Rule != rec.Rule
		rec.Name, rec.Description, rec.Rule = in.Name, in.Description, in.Rule
		rec.Updated, rec.Revision = now, rec.Revision+1
		if ruleChanged && rec.Kind == kindDynamic {
			// As in CreateSegment: the full re-evaluation after the
			// commit, or customer by customer here.
			inOne, err := s.evaluatesInOne(t)
			if err != nil {
				return err
			}
			if !inOne {
				rec.Pending = "rule changed"
			} else if err := s.evaluateAll(ctx, t, segs, now, "rule changed"); err != nil {
				return err
			}
		}
		if err := t.putSegments(segs, nil); err != nil {
			return err
		}
		out = rec
		return nil
	})
	if err != nil || out.Pending == "" {
		return out, err
	}
	return s.finishPending(ctx, tenant, out.ID, out.Pending)
}

// Etag is the opaque version tag of a segment revision.
func Etag(rev uint64) string { return fmt.Sprintf("r%d", rev) }

// DeleteSegment removes a segment; every member leaves it (with feed events).
func (s *Store) DeleteSegment(ctx context.Context, tenant, id string) error {
	now := s.clock.Now().UTC()
	return s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		seg, err := t.segment(id)
		if err != nil {
			return err
		}
		members, err := t.memberIDs(id)
		if err != nil {
			return err
		}
		for _, c := range members {
			if err := s.setMembership(ctx, t, seg, c, false, now, "segment deleted"); err != nil {
				return err
			}
		}
		if err := deletePrefix(t.b(bucketSizes), boltdb.Prefix(tenant, id)); err != nil {
			return err
		}
		if err := t.deleteHistory(id); err != nil {
			return err
		}
		return t.b(bucketSegments).Delete(boltdb.Key(tenant, id))
	})
}

// deleteHistory removes the tenant's history entries of a segment, so a
// segment created later under the same id starts without them. History is
// keyed by customer first, so this walks the tenant's history.
func (t tx) deleteHistory(segment string) error {
	var keys [][]byte
	prefix := boltdb.Prefix(t.tenant)
	c := t.b(bucketHistory).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		// k is tenant 0 customer 0 segment 0 seq(8).
		rest := k[len(prefix):]
		i := bytes.IndexByte(rest, boltdb.Sep)
		if i < 0 || len(rest) < i+1+9 {
			continue
		}
		if string(rest[i+1:len(rest)-9]) == segment {
			keys = append(keys, boltdb.Copy(k))
		}
	}
	for _, k := range keys {
		if err := t.b(bucketHistory).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, boltdb.Copy(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (t tx) memberIDs(segment string) ([]string, error) {
	var out []string
	prefix := boltdb.Prefix(t.tenant, segment)
	c := t.b(bucketMembers).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out, nil
}

// EditMembers adds or removes customers of a static segment. Unknown
// customers are refused, naming them.
func (s *Store) EditMembers(ctx context.Context, tenant, id string, customers []string, add bool) (int64, error) {
	now := s.clock.Now().UTC()
	var n int64
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		n = 0
		t := tx{Tx: btx, tenant: tenant}
		seg, err := t.segment(id)
		if err != nil {
			return err
		}
		if seg.Kind != kindStatic {
			return fault.InvalidField("segment_id", "segment %q is dynamic: its rule decides its members", id)
		}
		var v fault.Violations
		for i, c := range customers {
			if add && t.b(bucketProfiles).Get(boltdb.Key(tenant, c)) == nil {
				v.Add(fmt.Sprintf("customer_ids[%d]", i), "no customer %q", c)
			}
		}
		if err := v.Err(); err != nil {
			return err
		}
		reason := "removed by hand"
		if add {
			reason = "added by hand"
		}
		for _, c := range customers {
			if t.member(id, c) == add {
				continue
			}
			if err := s.setMembership(ctx, t, seg, c, add, now, reason); err != nil {
				return err
			}
			n++
		}
		return put(t.b(bucketSegments), boltdb.Key(tenant, id), seg)
	})
	return n, err
}

// Member is a member of a segment.
type Member struct {
	CustomerID string
	Since      time.Time
}

// Members lists a segment's members in customer id order.
func (s *Store) Members(ctx context.Context, tenant, id, token string, size int) ([]Member, string, error) {
	var out []Member
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if _, err := t.segment(id); err != nil {
			return err
		}
		prefix := boltdb.Prefix(tenant, id)
		c := t.b(bucketMembers).Cursor()
		k, v := c.Seek(prefix)
		if token != "" {
			after, err := base64.RawURLEncoding.DecodeString(token)
			if err != nil {
				return fault.InvalidField("page_token", "is not a token returned by this listing")
			}
			k, v = c.Seek(append(boltdb.Copy(prefix), after...))
			if k != nil && string(k[len(prefix):]) == string(after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(out) == size {
				next = base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].CustomerID))
				break
			}
			m, err := decodeMembership(v)
			if err != nil {
				return err
			}
			out = append(out, Member{CustomerID: string(k[len(prefix):]), Since: m.Since})
		}
		return nil
	})
	return out, next, err
}

// Preview evaluates a rule over every customer now, without saving.
func (s *Store) Preview(ctx context.Context, tenant string, rule *domain.Rule, sample int) (count, evaluated int64, ids []string, err error) {
	now := s.clock.Now().UTC()
	err = s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		prefix := boltdb.Prefix(tenant)
		c := t.b(bucketProfiles).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			in, err := t.ruleInput(string(k[len(prefix):]), now)
			if err != nil {
				return err
			}
			evaluated++
			if held, _ := rule.Eval(in); held {
				count++
				if len(ids) < sample {
					ids = append(ids, string(k[len(prefix):]))
				}
			}
		}
		return nil
	})
	return count, evaluated, ids, err
}

// Explanation is the answer of Explain.
type Explanation struct {
	Member  bool
	Rule    string
	Clauses []domain.Clause
	Time    time.Time
	Next    time.Time
	History []History
}

// History is one entering or leaving.
type History struct {
	Entered bool
	Time    time.Time
	Reason  string
}

// Explain says whether a customer is in a segment and why.
func (s *Store) Explain(ctx context.Context, tenant, segID, customer string) (*Explanation, error) {
	now := s.clock.Now().UTC()
	var out Explanation
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		seg, err := t.segment(segID)
		if err != nil {
			return err
		}
		if _, err := t.profile(customer); err != nil {
			return err
		}
		out = Explanation{Member: t.member(segID, customer), Rule: seg.Rule, Time: now}
		if seg.Kind == kindDynamic {
			r, err := s.rule(seg.Rule)
			if err != nil {
				return err
			}
			in, err := t.ruleInput(customer, now)
			if err != nil {
				return err
			}
			out.Clauses = r.Explain(in)
			out.Next = r.NextChange(in)
		}
		prefix := boltdb.Prefix(tenant, customer, segID)
		c := t.b(bucketHistory).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			h, err := decodeHistory(v)
			if err != nil {
				return err
			}
			out.History = append(out.History, History{Entered: h.Entered, Time: h.Time, Reason: h.Reason})
		}
		return nil
	})
	return &out, err
}

// DaySize is a segment's size at the end of a UTC day.
type DaySize struct {
	Day  time.Time
	Size int64
}

// Sizes returns a segment's daily sizes, oldest first.
func (s *Store) Sizes(ctx context.Context, tenant, segID string) ([]DaySize, error) {
	var out []DaySize
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if _, err := t.segment(segID); err != nil {
			return err
		}
		prefix := boltdb.Prefix(tenant, segID)
		c := t.b(bucketSizes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			day, err := boltdb.ReadU64(k[len(prefix):])
			if err != nil {
				return err
			}
			n, err := boltdb.ReadU64(v)
			if err != nil {
				return err
			}
			out = append(out, DaySize{Day: time.Unix(int64(day), 0).UTC(), Size: int64(n)})
		}
		return nil
	})
	return out, err
}
