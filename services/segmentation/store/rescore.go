package store

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/valuemodel"
)

// population loads every customer's features at now, and the value
// model's view of them when the tenant has a current model (with CLV when
// the pyramid ranks on it).
func (s *Store) population(tenant string, now time.Time) ([]domain.Row, domain.Settings, error) {
	var rows []domain.Row
	var settings domain.Settings
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		var err error
		if settings, err = t.settings(); err != nil {
			return err
		}
		model, err := t.currentModel(settings)
		if err != nil {
			return err
		}
		withCLV := settings.WithDefaults().Value == domain.ValueCLV
		var buf []valuemodel.Purchase
		prefix := boltdb.Prefix(tenant)
		c := btx.Bucket(bucketStates).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			st, err := decodeState(v)
			if err != nil {
				return err
			}
			row := domain.Row{CustomerID: string(k[len(prefix):]), Features: st.Features(now, settings.Currency)}
			if model != nil {
				row.Value = model.value(st, now, withCLV, &buf)
			}
			rows = append(rows, row)
		}
		return nil
	})
	return rows, settings, err
}

// Rescore recomputes the tenant's population-relative scores (RFM quintiles,
// pyramid tier, quadrant) at now, stores those that changed with a
// "scores.changed" feed event each, and re-evaluates the dynamic segments of
// the customers whose scores changed (rules may read scores). It returns
// how many customers' scores changed.
//
// Scores are computed from a snapshot read before the write transaction; an
// event applied in between is picked up by the next rescore, which it marks
// as due.
func (s *Store) Rescore(ctx context.Context, tenant string) (int, error) {
	now := s.clock.Now().UTC()
	rows, settings, err := s.population(tenant, now)
	if err != nil {
		return 0, err
	}
	scores := domain.ScorePopulation(rows, settings).Scores
	changed := 0
	err = s.db.Update(ctx, func(btx *bolt.Tx) error {
		changed = 0
		t := tx{Tx: btx, tenant: tenant}
		segs, err := t.segments()
		if err != nil {
			return err
		}
		before := sizes(segs)
		b := btx.Bucket(bucketScores)
		for i, row := range rows {
			if t.b(bucketProfiles).Get(boltdb.Key(tenant, row.CustomerID)) == nil {
				continue // merged away since the snapshot
			}
			old, err := t.score(row.CustomerID)
			if err != nil {
				return err
			}
			sc := scores[i]
			if *old == sc {
				continue
			}
			if err := b.Put(boltdb.Key(tenant, row.CustomerID), appendScore(nil, sc)); err != nil {
				return err
			}
			s.touch(t, row.CustomerID)
			if err := s.publishScores(ctx, t, row.CustomerID, *old, sc, row.Value, now); err != nil {
				return err
			}
			if err := s.reevaluate(ctx, t, segs, row.CustomerID, now, "scores.changed"); err != nil {
				return err
			}
			changed++
		}
		if err := t.putSegments(segs, before); err != nil {
			return err
		}
		return t.b(bucketSettings).Put(scoreTimeKey(tenant), boltdb.U64(uint64(now.UnixNano())))
	})
	return changed, err
}

// publishScores appends the feed events of a score change (scoreEvents).
func (s *Store) publishScores(ctx context.Context, t tx, customer string, old, sc domain.Score, v *domain.CustomerValue, now time.Time) error {
	evs, err := s.scoreEvents(ctx, t.tenant, customer, old, sc, v, now)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if _, err := s.feed.AppendPrepared(t.Tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// scoreEvents encodes the feed events of a score change: "scores.changed"
// when a class changed (not for a new contribution alone) and
// "activity.changed" when the activity did.
func (s *Store) scoreEvents(ctx context.Context, tenant, customer string, old, sc domain.Score, v *domain.CustomerValue, now time.Time) ([]feed.Prepared, error) {
	var out []feed.Prepared
	if !old.SameClass(sc) {
		change := &segmentationv1.ScoresChange{CustomerId: customer, After: convert.ScoreToProto(sc)}
		if old != (domain.Score{}) {
			change.Before = convert.ScoreToProto(old)
		}
		change.After.ScoreTime = convert.Timestamp(now)
		ev, err := s.feed.Prepare(ctx, tenant, TypeScoresChanged, customer, change)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if old.Activity == sc.Activity {
		return out, nil
	}
	change := &segmentationv1.ActivityChange{CustomerId: customer, Before: segmentationv1.Activity(old.Activity),
		After: segmentationv1.Activity(sc.Activity), Time: convert.Timestamp(now)}
	if v != nil {
		change.PAlive, change.FitId = v.PAlive, v.FitID
	}
	ev, err := s.feed.Prepare(ctx, tenant, TypeActivityChanged, customer, change)
	if err != nil {
		return nil, err
	}
	return append(out, ev), nil
}

// scoreTimeKey stores when a tenant was last scored, beside its settings.
func scoreTimeKey(tenant string) []byte { return boltdb.Key(tenant, "score_time") }
