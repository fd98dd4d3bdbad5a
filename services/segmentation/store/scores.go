package store

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/valuemodel"
)

// Membership is one segment a customer is in.
type Membership struct {
	SegmentID string
	Since     time.Time
}

// CustomerScores is a customer's features now, stored scores and segments.
type CustomerScores struct {
	Features  domain.Features
	Score     domain.Score
	ScoreTime time.Time
	Segments  []Membership
	// Value is the current value model's view now; nil without a model or
	// without purchases.
	Value *domain.CustomerValue
}

func (t tx) scoreTime() time.Time {
	if v := t.b(bucketSettings).Get(scoreTimeKey(t.tenant)); v != nil {
		if n, err := boltdb.ReadU64(v); err == nil {
			return time.Unix(0, int64(n)).UTC()
		}
	}
	return time.Time{}
}

// CustomerScores reads one customer's scores.
func (s *Store) CustomerScores(ctx context.Context, tenant, customer string) (*CustomerScores, error) {
	now := s.clock.Now().UTC()
	var out CustomerScores
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if _, err := t.profile(customer); err != nil {
			return err
		}
		st, err := t.state(customer)
		if err != nil {
			return err
		}
		settings, err := t.settings()
		if err != nil {
			return err
		}
		sc, err := t.score(customer)
		if err != nil {
			return err
		}
		out = CustomerScores{Features: st.Features(now, settings.Currency), Score: *sc, ScoreTime: t.scoreTime()}
		model, err := t.currentModel(settings)
		if err != nil {
			return err
		}
		if model != nil {
			var buf []valuemodel.Purchase
			out.Value = model.value(st, now, true, &buf)
		}
		prefix := boltdb.Prefix(tenant, customer)
		c := t.b(bucketMemberOf).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n, err := boltdb.ReadU64(v)
			if err != nil {
				return err
			}
			out.Segments = append(out.Segments, Membership{SegmentID: string(k[len(prefix):]), Since: time.Unix(0, int64(n)).UTC()})
		}
		return nil
	})
	return &out, err
}

// Reevaluate re-evaluates the tenant's dynamic segments over every
// customer, as when a rule was created or changed, and reports the size of
// segment id and how many customers entered and left it. It is the full
// re-evaluation, ReevaluateAll, which rescores the population too. A
// tenant with a value model, whose full re-evaluation keeps no population
// and so cannot tell what other writers wrote meanwhile, is re-evaluated
// customer by customer in one transaction (reevaluateInOne).
func (s *Store) Reevaluate(ctx context.Context, tenant, id string) (size, entered, left int64, err error) {
	var static, inOne bool
	err = s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		seg, err := t.segment(id)
		if err != nil {
			return err
		}
		if seg.Kind != kindDynamic {
			size, static = seg.Size, true
			return nil
		}
		inOne, err = s.evaluatesInOne(t)
		return err
	})
	if err != nil || static {
		return size, 0, 0, err
	}
	if inOne {
		return s.reevaluateInOne(ctx, tenant, id)
	}
	rep, err := s.ReevaluateAll(ctx, tenant, "re-evaluated")
	if err != nil {
		return 0, 0, 0, err
	}
	seg, err := s.GetSegment(ctx, tenant, id)
	if err != nil {
		return 0, 0, 0, err
	}
	c := rep.BySegment[id]
	return seg.Size, c.Entered, c.Left, nil
}

// reevaluateInOne is Reevaluate through the per-customer path, in one
// transaction.
func (s *Store) reevaluateInOne(ctx context.Context, tenant, id string) (size, entered, left int64, err error) {
	now := s.clock.Now().UTC()
	err = s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		seg, err := t.segment(id)
		if err != nil {
			return err
		}
		if seg.Kind != kindDynamic {
			size = seg.Size
			return nil
		}
		before, err := t.memberIDs(id)
		if err != nil {
			return err
		}
		segs, err := t.segments()
		if err != nil {
			return err
		}
		if err := s.evaluateAll(ctx, t, segs, now, "re-evaluated"); err != nil {
			return err
		}
		if err := t.putSegments(segs, nil); err != nil {
			return err
		}
		after, err := t.memberIDs(id)
		if err != nil {
			return err
		}
		entered, left = diff(before, after)
		size = int64(len(after))
		return nil
	})
	return size, entered, left, err
}

// diff counts the ids only in after (entered) and only in before (left);
// both lists are sorted.
func diff(before, after []string) (entered, left int64) {
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || (i < len(before) && before[i] < after[j]):
			left++
			i++
		case i == len(before) || after[j] < before[i]:
			entered++
			j++
		default:
			i++
			j++
		}
	}
	return entered, left
}

// Settings returns the tenant's settings with defaults.
func (s *Store) Settings(ctx context.Context, tenant string) (domain.Settings, error) {
	var st domain.Settings
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		st, err = tx{Tx: btx, tenant: tenant}.settings()
		return err
	})
	return st, err
}

// UpdateSettings stores new settings (validated by the caller's change) and
// marks the tenant for rescoring.
func (s *Store) UpdateSettings(ctx context.Context, tenant string, change func(*domain.Settings) error) (domain.Settings, error) {
	var out domain.Settings
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		st, err := t.settings()
		if err != nil {
			return err
		}
		if err := change(&st); err != nil {
			return err
		}
		if err := st.Validate(); err != nil {
			return err
		}
		out = st
		return put(t.b(bucketSettings), []byte(tenant), st)
	})
	if err == nil {
		s.markDirty(tenant)
	}
	return out, err
}

// Reports are the population reports computed at one instant.
type Reports struct {
	Time     time.Time
	Settings domain.Settings
	Rows     []domain.Row
	Pop      domain.Population
}

// Reports scores the whole tenant now, for the pyramid, quadrant and RFM
// reports: computed fresh, so a report never mixes two instants.
func (s *Store) Reports(ctx context.Context, tenant string) (*Reports, error) {
	now := s.clock.Now().UTC()
	rows, settings, err := s.population(tenant, now)
	if err != nil {
		return nil, err
	}
	return &Reports{Time: now, Settings: settings, Rows: rows, Pop: domain.ScorePopulation(rows, settings)}, nil
}

// MarkStale marks for rescoring every tenant with a current value model
// whose scores are older than maxAge at now: probability alive, and so
// activity, changes with time alone, and without new events or a fresh fit
// nothing else would rescore the tenant. It returns how many it marked.
func (s *Store) MarkStale(now time.Time, maxAge time.Duration) (int, error) {
	n := 0
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketSettings).ForEach(func(k, _ []byte) error {
			if bytes.IndexByte(k, boltdb.Sep) >= 0 {
				return nil
			}
			t := tx{Tx: btx, tenant: string(k)}
			if t.b(bucketSettings).Get(currentKey(t.tenant)) == nil || now.Sub(t.scoreTime()) < maxAge {
				return nil
			}
			s.markDirty(t.tenant)
			n++
			return nil
		})
	})
	return n, err
}

// MarkAllDirty marks every tenant with purchases for rescoring, at start-up:
// a crash between applying events and rescoring must not leave scores stale.
func (s *Store) MarkAllDirty() error {
	return s.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketSettings).ForEach(func(k, _ []byte) error {
			if bytes.IndexByte(k, boltdb.Sep) < 0 {
				s.markDirty(string(k))
			}
			return nil
		})
	})
}
