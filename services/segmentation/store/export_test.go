package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// PopulationMatchesFile brings the tenant's population up to date with the
// marks made since the last ReevaluateAll, as the next one would, and
// compares it with one loaded afresh from the file at the same instant: a
// customer written without being marked shows as a difference.
func (s *Store) PopulationMatchesFile(tenant string) error {
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	s.popMu.Lock()
	p := s.pops[tenant]
	s.popMu.Unlock()
	if p == nil {
		return fmt.Errorf("tenant %q has no population", tenant)
	}
	_, touched, _ := s.takePopulation(tenant)
	return s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		settings, err := t.settings()
		if err != nil {
			return err
		}
		segs, err := t.segments()
		if err != nil {
			return err
		}
		var dyn []*segmentRecord
		for i := range segs {
			if segs[i].Kind == kindDynamic {
				dyn = append(dyn, &segs[i])
			}
		}
		if _, err := p.refresh(context.Background(), t, touched, dyn, p.asOf, settings.Currency); err != nil {
			return err
		}
		fresh := &population{}
		if err := fresh.load(context.Background(), t, dyn, p.asOf, btx.Bucket(bucketSettings).Get([]byte(tenant)), settings.Currency); err != nil {
			return err
		}
		live := 0
		for i := range p.rows {
			r := &p.rows[i]
			if !r.hasState && !r.hasProfile {
				continue // a tombstone
			}
			live++
			j, ok := fresh.index[r.id]
			if !ok {
				return fmt.Errorf("customer %q is in the population, not in the file", r.id)
			}
			f := &fresh.rows[j]
			r.features.TenureDays = f.features.TenureDays // brought to now by a pass, not by a load
			if r.hasState != f.hasState || r.hasProfile != f.hasProfile || r.features != f.features ||
				!r.window.Equal(f.window) || r.score != f.score || r.due != f.due || !proto.Equal(r.customer, f.customer) {
				return fmt.Errorf("customer %q: population %+v, file %+v", r.id, *r, *f)
			}
			for _, seg := range dyn {
				if p.member(keyOf(seg), int32(i)) != fresh.member(keyOf(seg), j) {
					return fmt.Errorf("customer %q: membership of %q differs from the file", r.id, seg.ID)
				}
			}
		}
		if live != len(fresh.rows) {
			return fmt.Errorf("population has %d customers, the file %d", live, len(fresh.rows))
		}
		if len(p.members) != len(dyn) {
			return fmt.Errorf("population holds %d segments' memberships, the file %d dynamic segments", len(p.members), len(dyn))
		}
		for _, seg := range dyn {
			if _, ok := p.members[keyOf(seg)]; !ok {
				return fmt.Errorf("population holds no memberships of segment %q", seg.ID)
			}
		}
		return nil
	})
}

// member reports whether row i is a member of the segment.
func (p *population) member(k segKey, i int32) bool {
	bits := p.members[k]
	w := int(i / 64)
	return w < len(bits) && bits[w]&(1<<(i%64)) != 0
}

// BeforeBulkWrite makes f run between ReevaluateAll's plan and its write,
// with the ids of the customers the plan changes.
func (s *Store) BeforeBulkWrite(f func(changed []string)) {
	if f == nil {
		s.beforeBulkWrite = nil
		return
	}
	s.beforeBulkWrite = func(cs []rowChange) error {
		ids := make([]string, len(cs))
		for i := range cs {
			ids[i] = cs[i].id
		}
		f(ids)
		return nil
	}
}

// FailBulkWrite makes the next ReevaluateAll fail between its plan and its
// write, as a crash there would leave it.
func (s *Store) FailBulkWrite() {
	s.beforeBulkWrite = func([]rowChange) error {
		s.beforeBulkWrite = nil
		return errors.New("the pass failed before its write")
	}
}

// UsePerCustomerPath makes every full re-evaluation of s run customer by
// customer in one transaction: the reference ReevaluateAll is held to.
func (s *Store) UsePerCustomerPath() { s.perCustomer = true }
