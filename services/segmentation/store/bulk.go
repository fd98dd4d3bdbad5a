package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/valuemodel"
)

// Bulk work: loading a tenant's history without the feed, and re-evaluating
// a whole tenant (scores and every dynamic segment) in one pass.
//
// The per-customer paths (ApplyProfileEvent, reevaluate) decode a state, a
// profile and a score per customer and per call, and evaluateAll runs every
// customer through them in one transaction. That is right for one event and
// far too slow for a million customers. ReevaluateAll works from the
// tenant's population in memory (population.go), scores and evaluates every
// customer in parallel with the rules' native form, and writes what changed
// in customer order in chunked transactions, through the same setMembership
// and schedule the per-customer path uses, so the stored result is the same
// (TestReevaluateAllMatchesThePerCustomerPath).

// BulkLoad stores customers and applies their profile events as the profile
// feed follower would (customer.created, then event.recorded in the order
// given), in one transaction, without evaluating segments: call
// ReevaluateAll afterwards. Events may name customers already stored.
// Merged-away customers are skipped. It is for importing histories into a
// segmentation.db that no feed follower is writing at the same time.
func (s *Store) BulkLoad(ctx context.Context, tenant string, customers []*profilev1.Customer, events []*profilev1.Event) error {
	type pending struct {
		profile []byte
		seen    time.Time
		events  []domain.ProfileEvent
	}
	byID := map[string]*pending{}
	get := func(id string) *pending {
		p := byID[id]
		if p == nil {
			p = &pending{}
			byID[id] = p
		}
		return p
	}
	for _, c := range customers {
		if c.GetMergedInto() != "" {
			continue
		}
		raw, err := proto.Marshal(c)
		if err != nil {
			return fmt.Errorf("store: encode profile %q: %w", c.GetCustomerId(), err)
		}
		p := get(c.GetCustomerId())
		p.profile, p.seen = raw, c.GetCreateTime().AsTime()
	}
	currency := ""
	for _, e := range events {
		pe := convert.ProfileEventFromProto(e)
		p := get(e.GetCustomerId())
		p.events = append(p.events, pe)
		if currency == "" && pe.Kind == domain.EventPurchase {
			currency = pe.Currency
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids) // bbolt inserts far faster in key order
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		// Too many customers to mark one by one: the population, if the
		// tenant has one, is loaded again.
		btx.OnCommit(func() { s.dropPopulation(tenant) })
		profiles, states := t.b(bucketProfiles), t.b(bucketStates)
		for _, id := range ids {
			p := byID[id]
			key := boltdb.Key(tenant, id)
			if p.profile != nil {
				if err := profiles.Put(key, p.profile); err != nil {
					return err
				}
			}
			st, err := t.state(id)
			if err != nil {
				return err
			}
			if p.profile != nil {
				st.Seen(p.seen)
			}
			for _, e := range p.events {
				st.Apply(e)
			}
			if err := putState(states, key, st); err != nil {
				return err
			}
		}
		return s.adoptCurrency(t, currency)
	})
	if err == nil {
		s.markDirty(tenant)
	}
	return err
}

// DefineSegments stores segment definitions as CreateSegment does, without
// evaluating them: the caller runs ReevaluateAll next. Existing ids are
// refused.
func (s *Store) DefineSegments(ctx context.Context, tenant string, in []SegmentInput) error {
	now := s.clock.Now().UTC()
	return s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		var segs []segmentRecord
		for _, si := range in {
			if _, err := t.segment(si.ID); err == nil {
				return fmt.Errorf("segment_id %q exists", si.ID)
			}
			if si.Kind == kindDynamic {
				if _, err := s.rule(si.Rule); err != nil {
					return err
				}
			}
			segs = append(segs, segmentRecord{ID: si.ID, Name: si.Name, Description: si.Description, Kind: si.Kind,
				Rule: si.Rule, Created: now, Updated: now, Revision: 1})
		}
		return t.putSegments(segs, nil)
	})
}

// FullReevaluation reports what ReevaluateAll did and where the time went.
type FullReevaluation struct {
	// Customers are the customers with a profile (evaluated); Ranked those
	// with a purchase.
	Customers, Ranked int
	// Segments is the number of dynamic segments evaluated.
	Segments      int
	ScoresChanged int
	Entered, Left int64
	TimersChanged int
	// Loaded is true when the pass read the whole tenant from the file (the
	// tenant's first pass in this process, or after what its population
	// cannot follow); otherwise Reread customers were read again.
	Loaded bool
	Reread int
	// BySegment counts, per dynamic segment id, the customers the pass's
	// writes made enter and leave it.
	BySegment map[string]SegmentChange
	// Redone are the customers written by others between the pass's
	// snapshot and its write, evaluated again through the per-customer path
	// instead of given the pass's outcome (see writePlan).
	Redone int
	// Read is reading and decoding what the pass needs (the whole tenant,
	// or the customers written since the last pass); Score is the
	// population scoring; Evaluate the rules and their next changes; Write
	// the chunked transactions.
	Read, Score, Evaluate, Write time.Duration
}

// SegmentChange is how many customers entered and left a segment.
type SegmentChange struct{ Entered, Left int64 }

// bulkChunk is the customers per write transaction: large enough that the
// fsync per commit does not count, small enough that the transaction's
// dirty pages stay a few tens of MB.
const bulkChunk = 20_000

// rowChange is one customer whose outcome differs from what is stored.
type rowChange struct {
	id string
	// row is the customer's population row, -1 without a population.
	row                int32
	oldScore, newScore domain.Score
	value              *domain.CustomerValue
	// old and new are the dynamic memberships, segment j at bit j.
	old, new []uint64
	// oldDue and newDue are the timer (UnixNano), 0 for none.
	oldDue, newDue int64
}

// evalPlan is what a pass computed and ReevaluateAll writes.
type evalPlan struct {
	segs []segmentRecord
	// dyn are the indexes of the dynamic segments in segs; rules their
	// compiled rules, nil for one that no longer compiles (its memberships
	// stay as they are, as in reevaluate).
	dyn     []int
	rules   []*domain.Rule
	changes []rowChange
	// rescore is set when the pass ranks the population again; otherwise
	// every customer keeps its stored score (reevaluateAll).
	rescore bool
}

// ReevaluateAll recomputes the tenant's population scores and every dynamic
// segment's membership for every customer at the store's now, with the same
// outcome as Rescore followed by a re-evaluation of every customer (scores,
// memberships with their history and feed events, sizes, timers).
//
// It scores and evaluates every customer in memory, from the tenant's
// population (population.go), on GOMAXPROCS workers, and writes only what
// changed, in customer order, in chunks of bulkChunk customers, one
// transaction each, so it does not hold the writer for the whole tenant.
// Other writers go on meanwhile: what they write between the snapshot and
// a chunk's write is not overwritten by the snapshot's outcome (writePlan),
// except on the value-model path, which keeps no population to mark it.
func (s *Store) ReevaluateAll(ctx context.Context, tenant, reason string) (*FullReevaluation, error) {
	return s.reevaluateAll(ctx, tenant, reason, true)
}

// reevaluateAll is ReevaluateAll; without rescore every customer keeps its
// stored score, as the per-customer path evaluates rules with it
// (CreateSegment, UpdateSegment). Only a tenant without a value model may
// be re-evaluated without rescore.
func (s *Store) reevaluateAll(ctx context.Context, tenant, reason string, rescore bool) (*FullReevaluation, error) {
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	now := s.clock.Now().UTC()
	rep := &FullReevaluation{}
	start := time.Now()
	// The population is registered before the snapshot is taken, so that
	// every write committed after it is marked.
	p, touched, fresh := s.takePopulation(tenant)
	plan := evalPlan{rescore: rescore}
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		settings, err := t.settings()
		if err != nil {
			return err
		}
		if plan.segs, err = t.segments(); err != nil {
			return err
		}
		var dyn []*segmentRecord
		for i := range plan.segs {
			seg := &plan.segs[i]
			if seg.Kind != kindDynamic {
				continue
			}
			r, err := s.rule(seg.Rule)
			if err != nil {
				s.log.ErrorContext(ctx, "stored rule does not compile", "tenant", tenant, "segment", seg.ID, "error", err)
				r = nil
			}
			plan.dyn = append(plan.dyn, i)
			plan.rules = append(plan.rules, r)
			dyn = append(dyn, seg)
		}
		model, err := t.currentModel(settings)
		if err != nil {
			return err
		}
		if model != nil && !rescore {
			return errors.New("store: a tenant with a value model is re-evaluated with its scores")
		}
		if model != nil {
			// The value model's view of a customer needs its whole history
			// at every pass: nothing to keep.
			s.dropPopulation(tenant)
			p = nil
			return s.scanPlan(ctx, t, settings, model, &plan, now, start, rep)
		}
		raw := btx.Bucket(bucketSettings).Get([]byte(tenant))
		if fresh || !bytes.Equal(p.settings, raw) || now.Before(p.asOf) || len(touched) > len(p.rows)/4 {
			err = p.load(ctx, t, dyn, now, raw, settings.Currency)
			rep.Loaded = true
		} else {
			rep.Reread, err = p.refresh(ctx, t, touched, dyn, now, settings.Currency)
		}
		if err != nil {
			return err
		}
		rep.Read = time.Since(start)
		return popPlan(ctx, p, settings, &plan, dyn, now, rep)
	})
	if err == nil {
		if s.beforeBulkWrite != nil {
			err = s.beforeBulkWrite(plan.changes)
		}
	}
	if err == nil {
		mark := time.Now()
		err = s.writePlan(ctx, tenant, now, reason, &plan, p, rep)
		rep.Write = time.Since(mark)
	}
	if err != nil {
		// Whatever was read or written is uncertain now.
		s.dropPopulation(tenant)
		return nil, err
	}
	rep.Segments = len(plan.dyn)
	s.metrics.evaluated(ctx, scopeTenant, start)
	return rep, nil
}

// popPlan scores and evaluates every customer of p at now and lists what
// differs from what is stored. It works in p's buffers: a pass allocates
// next to nothing, so the garbage collector, which has the population to
// scan, seldom runs during one.
func popPlan(ctx context.Context, p *population, settings domain.Settings, plan *evalPlan, dyn []*segmentRecord, now time.Time, rep *FullReevaluation) error {
	mark := time.Now()
	rows, buf := p.rows, &p.buf
	err := parallel(ctx, len(rows), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			r := &rows[i]
			r.features.TenureDays, _ = domain.Tenure(r.features.FirstSeen, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Customers with a state are scored; tombstones and customers known
	// only by their profile are not.
	buf.scoring = buf.scoring[:0]
	buf.scoreIdx = grow(buf.scoreIdx, len(rows))
	for i := range rows {
		r := &rows[i]
		buf.scoreIdx[i] = -1
		if r.hasState {
			buf.scoreIdx[i] = int32(len(buf.scoring))
			buf.scoring = append(buf.scoring, int32(i))
		}
		if r.hasProfile {
			rep.Customers++
		}
	}
	var scored domain.Population
	if plan.rescore {
		scored = buf.score.ScoreEach(len(buf.scoring), func(j int) (string, *domain.Features, *domain.CustomerValue) {
			r := &rows[buf.scoring[j]]
			return r.id, &r.features, nil
		}, settings)
		rep.Ranked = scored.Ranked
	}
	newScore := func(i int) *domain.Score {
		if j := buf.scoreIdx[i]; plan.rescore && j >= 0 && rows[i].hasProfile {
			return &scored.Scores[j]
		}
		return &rows[i].score
	}
	rep.Score = time.Since(mark)

	mark = time.Now()
	// Memberships are bitsets over the rows, a set per segment: old as
	// stored, next as evaluated. Workers take rows in chunks of a multiple
	// of 64, so each owns the words it writes.
	words := (len(rows) + 63) / 64
	old := make([][]uint64, len(dyn))
	for j, seg := range dyn {
		old[j] = p.members[keyOf(seg)]
	}
	for len(buf.next) < len(dyn) {
		buf.next = append(buf.next, nil)
	}
	next := buf.next[:len(dyn)]
	for j := range next {
		next[j] = grow(next[j], words)
	}
	oldWord := func(j, w int) uint64 {
		if w < len(old[j]) {
			return old[j][w]
		}
		return 0
	}
	buf.newDue = grow(buf.newDue, len(rows))
	buf.changed = grow(buf.changed, words)
	rules := make([]string, len(dyn))
	for j, seg := range dyn {
		rules[j] = fmt.Sprintf("%s\x00%d\x00%s\x00%t", seg.ID, seg.Created.UnixNano(), seg.Rule, plan.rules[j] != nil)
	}
	sameRules := slices.Equal(rules, p.timerRules)
	p.timerRules = rules
	nowNano := now.UnixNano()
	err = parallel(ctx, len(rows), func(lo, hi int) error {
		for w := lo / 64; w < (hi+63)/64; w++ {
			buf.changed[w] = 0
			for j := range next {
				next[j][w] = 0
			}
		}
		var in domain.RuleRow
		for i := lo; i < hi; i++ {
			r := &rows[i]
			w, bit := i/64, uint64(1)<<(i%64)
			buf.newDue[i] = r.due
			if !r.hasProfile {
				// reevaluate skips a customer without a profile.
				for j := range next {
					next[j][w] |= oldWord(j, w) & bit
				}
				continue
			}
			sc := newScore(i)
			in = domain.RuleRow{Customer: r.customer, Features: &r.features, Score: sc, Now: now, WindowChange: r.window, Window: r.purchases}
			in.SetItems(int(r.items))
			// A timer is the earliest instant after now at which a rule
			// flips, and every such instant is fixed by the row. So a row
			// the last pass timed, under the same rules and score, whose
			// timer has not come, has it still.
			timed := sameRules && r.timed && *sc == r.score && (r.due == 0 || nowNano < r.due)
			if !timed {
				_, in.TenureChange = domain.Tenure(r.features.FirstSeen, now)
			}
			var due time.Time
			for j, rule := range plan.rules {
				if rule == nil {
					next[j][w] |= oldWord(j, w) & bit
					continue
				}
				// The rule's native form where it has one, CEL otherwise.
				if rule.EvalRow(&in) {
					next[j][w] |= bit
				}
				if !timed && rule.UsesTime() {
					if nc := rule.NextChangeRow(&in); !nc.IsZero() && (due.IsZero() || nc.Before(due)) {
						due = nc
					}
				}
			}
			if !timed {
				buf.newDue[i] = 0
				if !due.IsZero() {
					buf.newDue[i] = due.UnixNano()
				}
				r.timed = true
			}
			if *sc != r.score || buf.newDue[i] != r.due {
				buf.changed[w] |= bit
			}
		}
		for w := lo / 64; w < (hi+63)/64; w++ {
			for j := range next {
				buf.changed[w] |= next[j][w] ^ oldWord(j, w)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	for _, w := range buf.changed {
		n += bits.OnesCount64(w)
	}
	// Each change's memberships side by side, segment j at bit j.
	rowWords := (len(dyn) + 63) / 64
	side := make([]uint64, 2*n*rowWords)
	plan.changes = make([]rowChange, 0, n)
	for w, word := range buf.changed {
		for ; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			r := &rows[i]
			c := rowChange{id: r.id, row: int32(i), oldScore: r.score, newScore: *newScore(i), oldDue: r.due, newDue: buf.newDue[i]}
			c.old, c.new, side = side[:rowWords], side[rowWords:2*rowWords], side[2*rowWords:]
			for j := range next {
				bit := uint64(1) << (i % 64)
				if oldWord(j, w)&bit != 0 {
					c.old[j/64] |= 1 << (j % 64)
				}
				if next[j][w]&bit != 0 {
					c.new[j/64] |= 1 << (j % 64)
				}
			}
			plan.changes = append(plan.changes, c)
		}
	}
	// Rows added since the population was loaded sit at its end.
	slices.SortFunc(plan.changes, func(a, b rowChange) int { return strings.Compare(a.id, b.id) })
	rep.Evaluate = time.Since(mark)
	return nil
}

// scanPlan is the pass of a tenant with a value model: it reads and decodes
// every customer's whole state, since the model's view of a customer
// depends on its history and the time.
func (s *Store) scanPlan(ctx context.Context, t tx, settings domain.Settings, model *valueModel, plan *evalPlan, now, start time.Time, rep *FullReevaluation) error {
	dynOf := map[string]int{}
	for j, i := range plan.dyn {
		dynOf[plan.segs[i].ID] = j
	}
	words := (len(plan.dyn) + 63) / 64
	raw := readBulkRows(t.Tx, t.tenant)
	oldBits := make([]uint64, len(raw)*words)
	newBits := make([]uint64, len(raw)*words)
	if err := readBulkSide(t.Tx, t.tenant, raw, dynOf, words, oldBits); err != nil {
		return err
	}
	rows := make([]bulkRow, len(raw))
	for i := range raw {
		rows[i].rawRow = raw[i]
	}
	raw = nil
	withCLV := settings.WithDefaults().Value == domain.ValueCLV
	if err := parallel(ctx, len(rows), func(lo, hi int) error {
		return decodeBulkRows(rows[lo:hi], now, settings.Currency, model, withCLV)
	}); err != nil {
		return err
	}
	rep.Loaded = true
	rep.Read = time.Since(start)

	mark := time.Now()
	var scoring []domain.Row
	for i := range rows {
		r := &rows[i]
		r.scoreIdx = -1
		if r.hasState {
			r.scoreIdx = int32(len(scoring))
			scoring = append(scoring, domain.Row{CustomerID: r.id, Features: r.features, Value: r.value})
		}
		if r.hasProfile {
			rep.Customers++
		}
	}
	scored := domain.ScorePopulation(scoring, settings)
	scoring = nil
	rep.Ranked = scored.Ranked
	for i := range rows {
		r := &rows[i]
		r.newScore = r.oldScore
		if r.scoreIdx >= 0 && r.hasProfile {
			r.newScore = scored.Scores[r.scoreIdx]
		}
	}
	rep.Score = time.Since(mark)

	mark = time.Now()
	err := parallel(ctx, len(rows), func(lo, hi int) error {
		customer := &profilev1.Customer{}
		for i := lo; i < hi; i++ {
			r := &rows[i]
			if !r.hasProfile {
				continue // reevaluate skips a customer without a profile
			}
			proto.Reset(customer)
			if err := proto.Unmarshal(r.profile, customer); err != nil {
				return fmt.Errorf("store: decode profile %q: %w", r.id, err)
			}
			in := domain.RuleInput{
				Customer:     customer,
				Features:     convert.FeaturesToProto(r.features),
				Scores:       convert.ScoreToProto(r.newScore),
				Now:          now,
				WindowChange: r.window,
				TenureChange: r.tenure,
				Window:       r.purchases,
			}
			old, bits := oldBits[i*words:(i+1)*words], newBits[i*words:(i+1)*words]
			var next time.Time
			for j, rule := range plan.rules {
				w, m := j/64, uint64(1)<<(j%64)
				if rule == nil {
					bits[w] |= old[w] & m
					continue
				}
				if held, _ := rule.Eval(in); held {
					bits[w] |= m
				}
				if rule.UsesTime() {
					if nc := rule.NextChange(in); !nc.IsZero() && (next.IsZero() || nc.Before(next)) {
						next = nc
					}
				}
			}
			if !next.IsZero() {
				r.newDue = next.UnixNano()
			}
		}
		return nil
	})
	for i := range rows {
		rows[i].profile = nil // it points into the transaction's memory
	}
	if err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		old, bits := oldBits[i*words:(i+1)*words], newBits[i*words:(i+1)*words]
		if !r.hasProfile || (r.newScore == r.oldScore && r.newDue == r.oldDue && slices.Equal(old, bits)) {
			continue
		}
		plan.changes = append(plan.changes, rowChange{id: r.id, row: -1, oldScore: r.oldScore, newScore: r.newScore,
			value: r.value, old: old, new: bits, oldDue: r.oldDue, newDue: r.newDue})
	}
	rep.Evaluate = time.Since(mark)
	return nil
}

// writePlan writes the plan's changes in customer order, bulkChunk per
// transaction, through the per-customer path's own setMembership and
// schedule, and the score time with the last chunk. With a population, each
// chunk's outcome is recorded in it once committed.
//
// Other writers may commit between the snapshot the plan was made from and
// a chunk's transaction. So each chunk works on the segment records as they
// are in its transaction, and writes nothing for a segment deleted, created
// again or given another rule since. With a population, a customer written
// since the snapshot gets no outcome of the plan: the chunk evaluates it
// again through the per-customer path, and the next pass reads it again
// (it stays marked). Without one (a value model) such a write can be
// overwritten by the snapshot's outcome until the customer's next event.
func (s *Store) writePlan(ctx context.Context, tenant string, now time.Time, reason string, plan *evalPlan, p *population, rep *FullReevaluation) error {
	var keys []segKey
	for _, si := range plan.dyn {
		keys = append(keys, keyOf(&plan.segs[si]))
	}
	enc := encodeMembership(now, reason)
	for lo := 0; ; lo += bulkChunk {
		hi := min(lo+bulkChunk, len(plan.changes))
		chunk := plan.changes[lo:hi]
		evs, err := s.prepareChunk(ctx, tenant, now, reason, plan, chunk)
		if err != nil {
			return err
		}
		var entered, left int64
		var timers, scores, redone int
		// cur[j] is dynamic segment j as the chunk found it, -1 when it
		// changed since the snapshot; again[i] marks the chunk's customers
		// evaluated again.
		cur := make([]int, len(plan.dyn))
		again := make([]bool, len(chunk))
		moved := make([]SegmentChange, len(plan.dyn))
		err = s.db.Update(ctx, func(btx *bolt.Tx) error {
			entered, left, timers, scores, redone = 0, 0, 0, 0, 0
			clear(again)
			clear(moved)
			t := tx{Tx: btx, tenant: tenant, quiet: p != nil}
			segs, err := t.segments()
			if err != nil {
				return err
			}
			for j, si := range plan.dyn {
				was := &plan.segs[si]
				cur[j] = slices.IndexFunc(segs, func(seg segmentRecord) bool {
					return seg.ID == was.ID && seg.Created.Equal(was.Created) && seg.Kind == was.Kind && seg.Rule == was.Rule
				})
			}
			before := sizes(segs)
			written := func(string) bool { return false }
			if p != nil {
				written = s.writtenSince(t, p)
			}
			// The feed only ever appends: full pages are the right split.
			btx.Bucket(feed.LogBucket).FillPercent = 1.0
			for i := range chunk {
				c := &chunk[i]
				if written(c.id) {
					if err := s.reevaluate(ctx, t, segs, c.id, now, reason); err != nil {
						return err
					}
					again[i] = true
					redone++
					continue
				}
				if c.newScore != c.oldScore {
					if err := t.b(bucketScores).Put(boltdb.Key(tenant, c.id), appendScore(nil, c.newScore)); err != nil {
						return err
					}
					for _, ev := range evs[i].scores {
						if _, err := s.feed.AppendPrepared(btx, ev); err != nil {
							return err
						}
					}
					scores++
				}
				moves := evs[i].moves
				for j := range plan.dyn {
					w, m := j/64, uint64(1)<<(j%64)
					in := c.new[w]&m != 0
					if in == (c.old[w]&m != 0) {
						continue
					}
					ev := moves[0]
					moves = moves[1:]
					if cur[j] < 0 {
						continue
					}
					if err := s.writeMembership(t, &segs[cur[j]], c.id, in, enc, ev); err != nil {
						return err
					}
					if in {
						entered++
						moved[j].Entered++
					} else {
						left++
						moved[j].Left++
					}
				}
				if c.newDue != c.oldDue {
					due := time.Time{}
					if c.newDue != 0 {
						due = time.Unix(0, c.newDue)
					}
					if err := s.schedule(t, c.id, due); err != nil {
						return err
					}
					timers++
				}
			}
			// The sizes of the day once per segment, not once per member.
			for j := range plan.dyn {
				if cur[j] >= 0 && moved[j] != (SegmentChange{}) {
					if err := t.putSize(&segs[cur[j]], now); err != nil {
						return err
					}
				}
			}
			if err := t.putSegments(segs, before); err != nil {
				return err
			}
			if hi < len(plan.changes) {
				return nil
			}
			// The last chunk: the segments waiting for this pass have
			// their members.
			for j := range plan.dyn {
				if cur[j] >= 0 && segs[cur[j]].Pending != "" {
					segs[cur[j]].Pending = ""
					if err := put(t.b(bucketSegments), boltdb.Key(tenant, segs[cur[j]].ID), &segs[cur[j]]); err != nil {
						return err
					}
				}
			}
			if !plan.rescore {
				return nil
			}
			return t.b(bucketSettings).Put(scoreTimeKey(tenant), boltdb.U64(uint64(now.UnixNano())))
		})
		if err != nil {
			return err
		}
		rep.Entered += entered
		rep.Left += left
		rep.TimersChanged += timers
		rep.ScoresChanged += scores
		rep.Redone += redone
		if rep.BySegment == nil {
			rep.BySegment = map[string]SegmentChange{}
		}
		for j, m := range moved {
			id := plan.segs[plan.dyn[j]].ID
			c := rep.BySegment[id]
			c.Entered += m.Entered
			c.Left += m.Left
			rep.BySegment[id] = c
		}
		for i := range chunk {
			c := &chunk[i]
			if p == nil || again[i] {
				continue
			}
			r := &p.rows[c.row]
			r.score, r.due = c.newScore, c.newDue
			for j, k := range keys {
				if cur[j] >= 0 {
					p.setMember(k, c.row, c.new[j/64]&(1<<(j%64)) != 0)
				}
			}
		}
		if hi == len(plan.changes) {
			return nil
		}
	}
}

// prepared is a chunk customer's feed events, encoded before the chunk's
// transaction and on every core, so the transaction, which holds the
// writer, only stores them: its score events, then one per dynamic segment
// it enters or leaves, in segment order.
type prepared struct{ scores, moves []feed.Prepared }

func (s *Store) prepareChunk(ctx context.Context, tenant string, now time.Time, reason string, plan *evalPlan, chunk []rowChange) ([]prepared, error) {
	out := make([]prepared, len(chunk))
	err := parallel(ctx, len(chunk), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			c, p := &chunk[i], &out[i]
			if c.newScore != c.oldScore {
				var err error
				if p.scores, err = s.scoreEvents(ctx, tenant, c.id, c.oldScore, c.newScore, c.value, now); err != nil {
					return err
				}
			}
			for j, si := range plan.dyn {
				w, m := j/64, uint64(1)<<(j%64)
				in := c.new[w]&m != 0
				if in == (c.old[w]&m != 0) {
					continue
				}
				ev, err := s.membershipEvent(ctx, tenant, plan.segs[si].ID, c.id, in, now, reason)
				if err != nil {
					return err
				}
				p.moves = append(p.moves, ev)
			}
		}
		return nil
	})
	return out, err
}

// rawRow is one customer as a pass finds it in the file. profile,
// rawState and rawScore point into the read transaction's memory and are
// cleared before it ends.
type rawRow struct {
	id                          string
	hasState, hasProfile        bool
	profile, rawState, rawScore []byte
	// oldDue is the stored timer (UnixNano), 0 for none.
	oldDue int64
}

// bulkRow is one customer while the value-model pass reads the file.
type bulkRow struct {
	rawRow
	// row index in the scoring rows, -1 without a state.
	scoreIdx int32
	features domain.Features
	window   time.Time
	tenure   time.Time
	// purchases are the state's WindowPurchases.
	purchases []domain.WindowPurchase
	oldScore  domain.Score
	newScore  domain.Score
	// newDue is the timer (UnixNano), 0 for none.
	newDue int64
	// value is the value model's view, nil without a model.
	value *domain.CustomerValue
}

// readBulkRows lists the tenant's customers: the union of the states and
// profiles buckets, in key order, with their raw records (pointing into the
// transaction's memory).
func readBulkRows(btx *bolt.Tx, tenant string) []rawRow {
	prefix := boltdb.Prefix(tenant)
	sc := btx.Bucket(bucketStates).Cursor()
	pc := btx.Bucket(bucketProfiles).Cursor()
	sk, sv := sc.Seek(prefix)
	pk, pv := pc.Seek(prefix)
	live := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, prefix) }
	var all []rawRow
	for live(sk) || live(pk) {
		switch c := compareLive(sk, pk, live); {
		case c < 0:
			all = append(all, rawRow{id: string(sk[len(prefix):]), rawState: sv, hasState: true})
			sk, sv = sc.Next()
		case c > 0:
			all = append(all, rawRow{id: string(pk[len(prefix):]), profile: pv, hasProfile: true})
			pk, pv = pc.Next()
		default:
			all = append(all, rawRow{id: string(sk[len(prefix):]), rawState: sv, profile: pv, hasState: true, hasProfile: true})
			sk, sv = sc.Next()
			pk, pv = pc.Next()
		}
	}
	return all
}

// compareLive orders two cursor keys, a finished cursor last.
func compareLive(a, b []byte, live func([]byte) bool) int {
	switch {
	case !live(a):
		return 1
	case !live(b):
		return -1
	}
	return bytes.Compare(a, b)
}

// readBulkSide fills in each row's stored score, dynamic memberships (as
// bits, dynamic segment j at bit j) and timer, walking the scores,
// member_of and timer_of buckets alongside rows, all in the same key order.
func readBulkSide(btx *bolt.Tx, tenant string, rows []rawRow, dynOf map[string]int, words int, bits []uint64) error {
	prefix := boltdb.Prefix(tenant)
	// join walks bucket b's keys under the tenant; at calls f with the row
	// whose id is the key's first part and the rest after it.
	join := func(b []byte, f func(r int, rest, v []byte) error) error {
		c := btx.Bucket(b).Cursor()
		r := 0
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			k = k[len(prefix):]
			id, rest := k, []byte(nil)
			if i := bytes.IndexByte(k, boltdb.Sep); i >= 0 {
				id, rest = k[:i], k[i+1:]
			}
			for r < len(rows) && rows[r].id < string(id) {
				r++
			}
			if r == len(rows) {
				return nil
			}
			if rows[r].id != string(id) {
				continue
			}
			if err := f(r, rest, v); err != nil {
				return err
			}
		}
		return nil
	}
	err := join(bucketScores, func(r int, rest, v []byte) error {
		if rest == nil {
			rows[r].rawScore = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	if words > 0 {
		err = join(bucketMemberOf, func(r int, rest, _ []byte) error {
			if j, ok := dynOf[string(rest)]; ok {
				bits[r*words+j/64] |= 1 << (j % 64)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return join(bucketTimerOf, func(r int, rest, v []byte) error {
		if rest == nil && len(v) == 8 {
			rows[r].oldDue = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
}

// decodeBulkRows decodes states and scores and derives the features.
func decodeBulkRows(rows []bulkRow, now time.Time, currency string, model *valueModel, withCLV bool) error {
	var buf []valuemodel.Purchase
	for i := range rows {
		r := &rows[i]
		st := &domain.State{CustomerID: r.id}
		if r.rawState != nil {
			var err error
			if st, err = decodeState(r.rawState); err != nil {
				return err
			}
		}
		r.features = st.Features(now, currency)
		r.window, r.tenure = st.NextWindowChange(now), st.NextTenureChange(now)
		r.purchases = st.WindowPurchases(now, currency)
		if model != nil && r.rawState != nil {
			r.value = model.value(st, now, withCLV, &buf)
		}
		if r.rawScore != nil {
			sc, err := decodeScore(r.rawScore)
			if err != nil {
				return err
			}
			r.oldScore = sc
		}
		r.rawState, r.rawScore = nil, nil
	}
	return nil
}

// parallel runs f over [0, n) in chunks on GOMAXPROCS goroutines and
// returns the first error.
func parallel(ctx context.Context, n int, f func(lo, hi int) error) error {
	const chunk = 1024
	workers := runtime.GOMAXPROCS(0)
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (int, int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= n {
			return 0, 0, false
		}
		lo := next
		next = min(n, next+chunk)
		return lo, next, true
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo, hi, ok := take()
				if !ok {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = f(lo, hi)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
