package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/services/segmentation/domain"
)

// A tenant's population in memory, for ReevaluateAll.
//
// A full re-evaluation needs every customer's features, profile, stored
// score, dynamic memberships and timer. Reading and decoding them from
// bbolt costs seconds per million customers, far more than scoring and
// evaluating them, so the first ReevaluateAll of a tenant loads them into a
// population and later ones bring it up to date instead:
//
//   - Every write of a customer's state, profile, score, memberships or
//     timer calls touch, which, once the transaction has committed, marks
//     the customer in the tenant's population (when it has one). The next
//     ReevaluateAll takes the marks before it opens its read transaction
//     and reads those customers again, so a mark never lands on a snapshot
//     that misses its write.
//   - Features are kept as derived at some instant. Only the windowed ones
//     and tenure_days depend on the time: tenure_days is recomputed from
//     FirstSeen at every pass (domain.Tenure), and a customer whose next
//     window change has passed is read again.
//   - What the population cannot follow customer by customer rebuilds it:
//     new settings (the currency and measures the features and scores are
//     derived under), a clock that went back, BulkLoad, a value model
//     (whose view of a customer needs its whole history at every pass), or
//     a failed write. Memberships are kept per segment id and creation
//     time, so a segment created, or deleted and created again, is read
//     from its members alone.
//
// ReevaluateAll's own writes update the population directly and do not
// mark. A population no pass used for a while is dropped
// (EvictIdlePopulations). TestReevaluateAllMatchesThePerCustomerPath runs a population
// through events, merges, profile changes, segment changes and time, and
// compares every stored record with the per-customer path's.

// population is one tenant's customers as ReevaluateAll sees them.
type population struct {
	// settings is the raw settings record the features and scores were
	// derived under.
	settings []byte
	// asOf is the latest evaluation time; an earlier one rebuilds.
	asOf  time.Time
	index map[string]int32
	rows  []popRow
	// members are the dynamic segments' members, a bit per row.
	members map[segKey][]uint64
	// touched are the customers written since the marks were last taken.
	touched map[string]struct{}
	// timerRules are the dynamic segments and rules the timers of the
	// rows marked timed were computed with.
	timerRules []string
	// buf is a pass's working memory (popPlan), kept for the next.
	buf passBuffers
	// used is set by every pass and cleared by EvictIdlePopulations.
	used bool
}

// passBuffers are what popPlan computes, aligned with the rows.
type passBuffers struct {
	score             domain.ScoreBuffers
	scoring, scoreIdx []int32
	newDue            []int64
	// next is each dynamic segment's members as evaluated, a bit per row;
	// changed marks the rows whose outcome differs from what is stored.
	next    [][]uint64
	changed []uint64
}

// popRow is one customer of a population: everything known under its
// customer id, a tombstone when it has neither state nor profile any more.
type popRow struct {
	id                   string
	hasState, hasProfile bool
	customer             *profilev1.Customer
	// items is the customer's domain.RuleItems.
	items int32
	// features were derived at some instant before asOf; window is when a
	// windowed feature next changes (zero: never).
	features domain.Features
	window   time.Time
	// purchases are the state's WindowPurchases when features were
	// derived: when a windowed feature's comparison flips.
	purchases []domain.WindowPurchase
	score     domain.Score
	// due is the stored timer (UnixNano), 0 for none.
	due int64
	// timed is set when due is what the population's timerRules give the
	// row as it is: a pass computed it and nothing was read since.
	timed bool
}

// segKey names a segment's membership: a segment deleted and created again
// under its id is another key.
type segKey struct {
	id      string
	created int64
}

func keyOf(seg *segmentRecord) segKey { return segKey{seg.ID, seg.Created.UnixNano()} }

// setMember records row i's membership.
func (p *population) setMember(k segKey, i int32, in bool) {
	bits := p.members[k]
	w := int(i / 64)
	if w >= len(bits) {
		if !in {
			return
		}
		bits = append(bits, make([]uint64, w+1-len(bits))...)
		p.members[k] = bits
	}
	if in {
		bits[w] |= 1 << (i % 64)
	} else {
		bits[w] &^= 1 << (i % 64)
	}
}

// touch marks the customer in the tenant's population once t commits. It
// costs nothing for a tenant without one, and nothing in ReevaluateAll's
// own transactions (t.quiet).
func (s *Store) touch(t tx, customer string) {
	if t.quiet || s.popCount.Load() == 0 {
		return
	}
	tenant := t.tenant
	// A ReevaluateAll chunk later in the same group commit must see the
	// write before it is committed (writtenSince).
	if sc, ok := s.db.ScratchOf(t.Tx); ok {
		set, _ := sc.Get(touchedKey(tenant))
		m, _ := set.(map[string]struct{})
		if m == nil {
			m = map[string]struct{}{}
			sc.Set(touchedKey(tenant), m)
		}
		m[customer] = struct{}{}
	}
	t.OnCommit(func() {
		s.popMu.Lock()
		if p := s.pops[tenant]; p != nil {
			p.touched[customer] = struct{}{}
		}
		s.popMu.Unlock()
	})
}

// touchedKey keys, in a transaction's scratch, the customers of a tenant
// written in it so far.
type touchedKey string

// writtenSince returns whether a customer of the tenant was written since
// p's pass took its snapshot: by a commit since (marked in p), or earlier
// in t's group commit.
func (s *Store) writtenSince(t tx, p *population) func(customer string) bool {
	var inTx map[string]struct{}
	if sc, ok := s.db.ScratchOf(t.Tx); ok {
		v, _ := sc.Get(touchedKey(t.tenant))
		inTx, _ = v.(map[string]struct{})
	}
	return func(customer string) bool {
		if _, ok := inTx[customer]; ok {
			return true
		}
		s.popMu.Lock()
		defer s.popMu.Unlock()
		_, ok := p.touched[customer]
		return ok
	}
}

// dropPopulation forgets the tenant's population: the next ReevaluateAll
// loads it again.
func (s *Store) dropPopulation(tenant string) {
	s.popMu.Lock()
	if _, ok := s.pops[tenant]; ok {
		delete(s.pops, tenant)
		s.popCount.Add(-1)
	}
	s.popMu.Unlock()
}

// takePopulation returns the tenant's population with the marks made since
// the last call. A tenant without one gets an empty one (fresh), so that
// writes are marked from now on.
func (s *Store) takePopulation(tenant string) (p *population, touched map[string]struct{}, fresh bool) {
	s.popMu.Lock()
	defer s.popMu.Unlock()
	p = s.pops[tenant]
	if p == nil {
		p, fresh = &population{touched: map[string]struct{}{}}, true
		s.pops[tenant] = p
		s.popCount.Add(1)
	}
	touched = p.touched
	p.touched = map[string]struct{}{}
	p.used = true
	return p, touched, fresh
}

// EvictIdlePopulations forgets the populations no ReevaluateAll used since
// the last call, and returns how many. A population holds some 3 GiB per
// million customers; called every quarter of an hour, it keeps those of
// the tenants re-evaluated within the last half hour. A tenant's next pass
// after an eviction loads its population again.
func (s *Store) EvictIdlePopulations() int {
	// Not while a pass runs: it counts on its population being marked.
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	s.popMu.Lock()
	defer s.popMu.Unlock()
	n := 0
	for tenant, p := range s.pops {
		if !p.used {
			delete(s.pops, tenant)
			s.popCount.Add(-1)
			n++
			continue
		}
		p.used = false
	}
	return n
}

// load reads the tenant's customers (the union of the states and profiles
// buckets) with their features at now, profiles, scores, timers and their
// memberships of the dynamic segments dyn, decoding in parallel. It replaces
// everything p held but the marks.
func (p *population) load(ctx context.Context, t tx, dyn []*segmentRecord, now time.Time, settings []byte, currency string) error {
	raw := readBulkRows(t.Tx, t.tenant)
	dynOf := make(map[string]int, len(dyn))
	for j, seg := range dyn {
		dynOf[seg.ID] = j
	}
	words := (len(dyn) + 63) / 64
	bits := make([]uint64, len(raw)*words)
	if err := readBulkSide(t.Tx, t.tenant, raw, dynOf, words, bits); err != nil {
		return err
	}
	p.settings, p.asOf = bytes.Clone(settings), now
	p.index, p.rows = make(map[string]int32, len(raw)), make([]popRow, len(raw))
	p.members = make(map[segKey][]uint64, len(dyn))
	err := parallel(ctx, len(raw), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			r, row := &raw[i], &p.rows[i]
			row.id, row.hasState, row.hasProfile, row.due = r.id, r.hasState, r.hasProfile, r.oldDue
			if err := row.decode(r.rawState, r.profile, r.rawScore, now, currency); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range raw {
		p.index[raw[i].id] = int32(i)
	}
	for j, seg := range dyn {
		set := make([]uint64, (len(raw)+63)/64)
		for i := range raw {
			if bits[i*words+j/64]&(1<<(j%64)) != 0 {
				set[i/64] |= 1 << (i % 64)
			}
		}
		p.members[keyOf(seg)] = set
	}
	return nil
}

// decode fills the row from its raw state, profile and score (each nil when
// absent), with its features at now.
func (row *popRow) decode(rawState, rawProfile, rawScore []byte, now time.Time, currency string) error {
	st := &domain.State{CustomerID: row.id}
	if rawState != nil {
		var err error
		if st, err = decodeState(rawState); err != nil {
			return err
		}
	}
	row.features = st.Features(now, currency)
	row.window = st.NextWindowChange(now)
	row.purchases = st.WindowPurchases(now, currency)
	row.timed = false
	row.customer = nil
	if rawProfile != nil {
		c := &profilev1.Customer{}
		if err := proto.Unmarshal(rawProfile, c); err != nil {
			return fmt.Errorf("store: decode profile %q: %w", row.id, err)
		}
		row.customer = c
	}
	row.items = int32(domain.RuleItems(row.customer))
	sc, err := decodeScore(rawScore)
	row.score = sc
	return err
}

// refresh brings p up to date at now in t's snapshot: the touched customers
// and those whose windows have moved are read again (it returns how many),
// the memberships of segments it has not seen are read from their members,
// those of segments gone are dropped.
func (p *population) refresh(ctx context.Context, t tx, touched map[string]struct{}, dyn []*segmentRecord, now time.Time, currency string) (int, error) {
	for i := range p.rows {
		r := &p.rows[i]
		if !r.window.IsZero() && !now.Before(r.window) {
			touched[r.id] = struct{}{}
		}
	}
	keep := make(map[segKey]bool, len(dyn))
	var fresh []segKey
	for _, seg := range dyn {
		k := keyOf(seg)
		keep[k] = true
		if _, ok := p.members[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	maps.DeleteFunc(p.members, func(k segKey, _ []uint64) bool { return !keep[k] })
	for _, k := range fresh {
		p.members[k] = nil
	}
	// The customers are read and decoded in parallel (a read-only bbolt
	// transaction may be shared), then put in place one by one.
	ids := slices.Collect(maps.Keys(touched))
	got := make([]reread, len(ids))
	err := parallel(ctx, len(ids), func(lo, hi int) error {
		for k := lo; k < hi; k++ {
			if err := got[k].read(t, ids[k], dyn, now, currency); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for k := range got {
		g := &got[k]
		i, ok := p.index[g.row.id]
		if !ok {
			if !g.row.hasState && !g.row.hasProfile {
				continue
			}
			i = int32(len(p.rows))
			p.rows = append(p.rows, popRow{})
			p.index[g.row.id] = i
		}
		p.rows[i] = g.row
		for j, seg := range dyn {
			p.setMember(keyOf(seg), i, g.in[j])
		}
	}
	for _, k := range fresh {
		prefix := boltdb.Prefix(t.tenant, k.id)
		c := t.b(bucketMembers).Cursor()
		for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
			if i, ok := p.index[string(key[len(prefix):])]; ok {
				p.setMember(k, i, true)
			}
		}
	}
	p.asOf = now
	return len(touched), nil
}

// reread is one customer read again: its row and its memberships of the
// dynamic segments.
type reread struct {
	row popRow
	in  []bool
}

// read reads the customer id as t holds it.
func (g *reread) read(t tx, id string, dyn []*segmentRecord, now time.Time, currency string) error {
	key := boltdb.Key(t.tenant, id)
	rawState, rawProfile := t.b(bucketStates).Get(key), t.b(bucketProfiles).Get(key)
	row := &g.row
	row.id, row.hasState, row.hasProfile = id, rawState != nil, rawProfile != nil
	if err := row.decode(rawState, rawProfile, t.b(bucketScores).Get(key), now, currency); err != nil {
		return err
	}
	if v := t.b(bucketTimerOf).Get(key); len(v) == 8 {
		row.due = int64(binary.BigEndian.Uint64(v))
	}
	// The customer's memberships are the member_of keys under its id.
	in := map[string]bool{}
	prefix := boltdb.Prefix(t.tenant, id)
	c := t.b(bucketMemberOf).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		in[string(k[len(prefix):])] = true
	}
	g.in = make([]bool, len(dyn))
	for j, seg := range dyn {
		g.in[j] = in[seg.ID]
	}
	return nil
}

// grow returns s resized to n, its old contents unspecified.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
