package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/segmentation/store"
)

// bulkRules mix customer fields, features, windows, tenure, days_since and
// population scores, so every input of a rule and every kind of timer is
// covered.
var bulkRules = []string{
	`features.purchases >= 2 && days_since(features.last_purchase) <= 30`,
	`days_since(features.last_purchase) > 180 && features.purchases >= 3`,
	`features.monetary_365d >= 20000`,
	`scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM || scores.tier == rapport.segmentation.v1.Tier.TIER_GOLD`,
	`customer.region.country == "FR" && features.purchases_90d >= 1`,
	`"vip" in customer.tags`,
	`"plan" in customer.attributes && customer.attributes["plan"] == "premium"`,
	`features.refunds >= 1 && features.purchases_30d <= 2`,
	`features.tenure_days < 90`,
	`features.purchases == 0 && days_since(customer.create_time) >= 30`,
	`features.nps >= 9`,
	`scores.rfm.group == rapport.segmentation.v1.RfmGroup.RFM_GROUP_AT_RISK`,
	`scores.rfm.recency >= 4 && scores.rfm.frequency <= 2`,
	`customer.tags.exists(t, t.startsWith("b2b"))`,
	`scores.quadrant == rapport.segmentation.v1.Quadrant.QUADRANT_STRATEGIC_PARTNER && days_since(features.last_purchase) > 60`,
	`customer.attributes["tier"] == "x"`, // a runtime error for most customers: not a member
}

// bulkBase is the clock of TestReevaluateAllMatchesThePerCustomerPath.
var bulkBase = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// bulkPopulation builds customers and their events: amounts and days from
// small sets so that RFM and pyramid ranks tie, refunds (partial and full),
// surveys, complaints, and purchases up to two years back.
func bulkPopulation(n int, seed uint64) ([]*profilev1.Customer, []*profilev1.Event) {
	rng := rand.New(rand.NewPCG(seed, 7))
	countries := []string{"FR", "DE", "CN"}
	var cs []*profilev1.Customer
	var evs []*profilev1.Event
	money := func(m int64) *typev1.Money { return &typev1.Money{AmountMinor: m, Currency: "EUR"} }
	for i := range n {
		id := fmt.Sprintf("c%05d", i)
		c := &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
			Region:     &profilev1.Region{Country: countries[rng.IntN(len(countries))]},
			CreateTime: timestamppb.New(bulkBase.Add(-time.Duration(rng.IntN(700)) * 24 * time.Hour))}
		if rng.IntN(10) == 0 {
			c.Tags = append(c.Tags, "vip")
		}
		if rng.IntN(15) == 0 {
			c.Tags = append(c.Tags, "b2b-retail")
		}
		if rng.IntN(4) == 0 {
			c.Attributes = map[string]string{"plan": []string{"premium", "basic"}[rng.IntN(2)]}
		}
		if i%487 == 13 {
			// Over the 500 list entries every rule assumes at most: no
			// rule holds for this customer, whichever fields it reads.
			for k := range 501 {
				c.Tags = append(c.Tags, fmt.Sprint("t", k))
			}
		}
		cs = append(cs, c)
		for k := range rng.IntN(9) {
			at := bulkBase.Add(-time.Duration(rng.IntN(720))*24*time.Hour - time.Duration(rng.IntN(3))*time.Hour)
			order := fmt.Sprintf("%s-o%d", id, k)
			amount := int64(1000 * (1 + rng.IntN(8)))
			evs = append(evs, &profilev1.Event{EventId: order, CustomerId: id, OccurTime: timestamppb.New(at),
				Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order, Amount: money(amount)}}})
			if rng.IntN(8) == 0 {
				evs = append(evs, &profilev1.Event{EventId: order + "-r", CustomerId: id, OccurTime: timestamppb.New(at.Add(48 * time.Hour)),
					Kind: &profilev1.Event_Refund{Refund: &profilev1.Refund{OrderId: order, Amount: money(amount / int64(1+rng.IntN(2)))}}})
			}
		}
		if rng.IntN(6) == 0 {
			nps := int32(rng.IntN(11))
			evs = append(evs, &profilev1.Event{EventId: id + "-s", CustomerId: id, OccurTime: timestamppb.New(bulkBase.Add(-24 * time.Hour)),
				Kind: &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{Nps: &nps}}})
		}
		if rng.IntN(20) == 0 {
			evs = append(evs, &profilev1.Event{EventId: id + "-x", CustomerId: id, OccurTime: timestamppb.New(bulkBase.Add(-72 * time.Hour)),
				Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: id + "-x"}}})
		}
	}
	return cs, evs
}

type bulkEnv struct {
	t   *testing.T
	db  *boltdb.DB
	clk *clock.Fake
	st  *store.Store
	seq uint64
}

func newBulkEnv(t *testing.T) *bulkEnv {
	db := boltdb.OpenTemp(t, store.Options())
	clk := clock.NewFake(bulkBase)
	st, err := store.New(db, feed.NewLog(db, clk), clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &bulkEnv{t: t, db: db, clk: clk, st: st}
}

// newLoadedBulkEnv is newBulkEnv with bulkPopulation(n, seed) bulk-loaded
// for tenant.
func newLoadedBulkEnv(t *testing.T, tenant string, n int, seed uint64) *bulkEnv {
	e := newBulkEnv(t)
	customers, events := bulkPopulation(n, seed)
	if err := e.st.BulkLoad(context.Background(), tenant, customers, events); err != nil {
		t.Fatal(err)
	}
	return e
}

// feedApply delivers profile feed events one by one, as the follower does.
func (e *bulkEnv) feedApply(tenant, typ string, msgs ...proto.Message) {
	e.t.Helper()
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			e.t.Fatal(err)
		}
		e.seq++
		ev := &feedv1.Event{Sequence: e.seq, Tenant: tenant, Type: typ, Time: timestamppb.New(e.clk.Now()), Payload: a}
		err = e.db.Update(context.Background(), func(tx *bolt.Tx) error { return e.st.ApplyProfileEvent(context.Background(), tx, ev) })
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// dump renders the stored outcome of scoring and evaluation, ignoring
// membership reasons (the two paths name their trigger differently):
// states, profiles, scores, members (since), member_of, timers, sizes and
// segment sizes; with history, history entries per customer and segment
// after the first skip ones, and feed events after feedAfter.
func (e *bulkEnv) dump(historySkip map[string]int, feedAfter uint64) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	err := e.db.View(func(tx *bolt.Tx) error {
		for _, b := range []string{"states", "profiles", "scores", "member_of", "timers", "timer_of", "sizes"} {
			_ = tx.Bucket([]byte(b)).ForEach(func(k, v []byte) error {
				out[b] = append(out[b], fmt.Sprintf("%q=%x", k, v))
				return nil
			})
		}
		_ = tx.Bucket([]byte("members")).ForEach(func(k, v []byte) error {
			var m struct {
				Since time.Time `json:"since"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out["members"] = append(out["members"], fmt.Sprintf("%q since %s", k, m.Since))
			return nil
		})
		_ = tx.Bucket([]byte("segments")).ForEach(func(k, v []byte) error {
			var s struct {
				Size int64 `json:"size"`
			}
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out["segments"] = append(out["segments"], fmt.Sprintf("%q size %d", k, s.Size))
			return nil
		})
		if historySkip != nil {
			seen := map[string]int{}
			_ = tx.Bucket([]byte("history")).ForEach(func(k, v []byte) error {
				who := string(k[:len(k)-9]) // without 0 seq(8)
				seen[who]++
				if seen[who] <= historySkip[who] {
					return nil
				}
				var h struct {
					Entered bool      `json:"in"`
					Time    time.Time `json:"t"`
				}
				if err := json.Unmarshal(v, &h); err != nil {
					return err
				}
				out["history"] = append(out["history"], fmt.Sprintf("%q %v %s", who, h.Entered, h.Time))
				return nil
			})
			c := tx.Bucket(feed.LogBucket).Cursor()
			for k, v := c.Seek(boltdb.U64(feedAfter + 1)); k != nil; k, v = c.Next() {
				ev := &feedv1.Event{}
				if err := proto.Unmarshal(v, ev); err != nil {
					return err
				}
				p, err := ev.Payload.UnmarshalNew()
				if err != nil {
					return err
				}
				if mc, ok := p.(*segmentationv1.MembershipChange); ok {
					mc.Reason = ""
				}
				text, _ := prototext.Marshal(p)
				out["feed"] = append(out["feed"], ev.Tenant+" "+ev.Type+" "+ev.Key+" "+string(text))
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// historyCounts counts history entries per tenant, customer and segment.
func (e *bulkEnv) historyCounts() (map[string]int, uint64) {
	counts := map[string]int{}
	var last uint64
	_ = e.db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket([]byte("history")).ForEach(func(k, _ []byte) error {
			counts[string(k[:len(k)-9])]++
			return nil
		})
		if k, _ := tx.Bucket(feed.LogBucket).Cursor().Last(); k != nil {
			last, _ = boltdb.ReadU64(k)
		}
		return nil
	})
	return counts, last
}

func compareDumps(t *testing.T, step string, old, bulk map[string][]string) {
	t.Helper()
	for _, b := range []string{"states", "profiles", "scores", "members", "member_of", "timers", "timer_of", "sizes", "segments", "history", "feed"} {
		o, n := old[b], bulk[b]
		if slices.Equal(o, n) {
			continue
		}
		for i := 0; i < max(len(o), len(n)); i++ {
			var a, c string
			if i < len(o) {
				a = o[i]
			}
			if i < len(n) {
				c = n[i]
			}
			if a != c {
				t.Fatalf("%s: bucket %s differs (%d entries per-customer path, %d bulk path); first difference:\n per-customer: %s\n bulk:         %s", step, b, len(o), len(n), a, c)
			}
		}
	}
}

// TestReevaluateAllMatchesThePerCustomerPath loads one population into two
// stores, one through the profile feed and the per-customer paths
// (ApplyProfileEvent, CreateSegment, Rescore, Reevaluate), the other through
// BulkLoad, DefineSegments and ReevaluateAll, and requires the same stored
// outcome: after the first evaluation, then again after time passes and new
// events arrive, when the history and feed events of the re-evaluation must
// match too.
func TestReevaluateAllMatchesThePerCustomerPath(t *testing.T) {
	ctx := context.Background()
	const tenant = "acme"
	customers, events := bulkPopulation(2500, 1)
	others, otherEvents := bulkPopulation(50, 2)

	old, bulk := newBulkEnv(t), newBulkEnv(t)
	old.st.UsePerCustomerPath()
	for _, e := range []*bulkEnv{old, bulk} {
		// Another tenant's data must be left alone by both.
		e.feedApply("other", "customer.created", asMessages(others)...)
		e.feedApply("other", "event.recorded", asMessages(otherEvents)...)
	}
	for _, c := range customers {
		old.feedApply(tenant, "customer.created", c)
	}
	old.feedApply(tenant, "event.recorded", asMessages(events)...)
	// BulkLoad in three calls, a customer's events spread over them.
	third := len(events) / 3
	if err := bulk.st.BulkLoad(ctx, tenant, customers[:1000], events[:third]); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.BulkLoad(ctx, tenant, customers[1000:], events[third:2*third]); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.BulkLoad(ctx, tenant, nil, events[2*third:]); err != nil {
		t.Fatal(err)
	}

	var defs []store.SegmentInput
	for i, r := range bulkRules {
		defs = append(defs, store.SegmentInput{ID: fmt.Sprintf("s%02d", i), Name: fmt.Sprint("rule ", i),
			Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC), Rule: r})
	}
	defs = append(defs, store.SegmentInput{ID: "static", Name: "by hand", Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_STATIC)})
	for _, d := range defs {
		if _, _, err := old.st.CreateSegment(ctx, tenant, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.st.Rescore(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.DefineSegments(ctx, tenant, defs); err != nil {
		t.Fatal(err)
	}
	rep, err := bulk.st.ReevaluateAll(ctx, tenant, "segment created")
	if err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep.Customers != len(customers) || rep.Segments != len(bulkRules) || rep.Entered == 0 || rep.ScoresChanged == 0 {
		t.Fatalf("report %+v: want every customer and segment evaluated, entries and scores", rep)
	}
	compareDumps(t, "first evaluation", old.dump(nil, 0), bulk.dump(nil, 0))

	// Time passes: windows slide, days_since rules flip, ranks move; new
	// purchases and refunds arrive through the feed on both.
	hOld, fOld := old.historyCounts()
	hBulk, fBulk := bulk.historyCounts()
	_, laterEvents := bulkPopulation(300, 3)
	for _, e := range []*bulkEnv{old, bulk} {
		e.clk.Set(bulkBase.Add(45*24*time.Hour + 3*time.Hour))
	}
	for _, ev := range laterEvents {
		ev.OccurTime = timestamppb.New(ev.OccurTime.AsTime().Add(45 * 24 * time.Hour))
	}
	for _, e := range []*bulkEnv{old, bulk} {
		e.feedApply(tenant, "event.recorded", asMessages(laterEvents)...)
	}
	compareDumps(t, "events after time passed", old.dump(hOld, fOld), bulk.dump(hBulk, fBulk))
	hOld2, fOld2 := old.historyCounts()
	hBulk2, fBulk2 := bulk.historyCounts()

	if _, err := old.st.Rescore(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := old.st.Reevaluate(ctx, tenant, "s00"); err != nil {
		t.Fatal(err)
	}
	rep, err = bulk.st.ReevaluateAll(ctx, tenant, "re-evaluated")
	if err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep.Entered+rep.Left == 0 || rep.TimersChanged == 0 {
		t.Fatalf("report %+v: want memberships and timers to change after 45 days", rep)
	}
	compareDumps(t, "re-evaluation after 45 days", old.dump(hOld2, fOld2), bulk.dump(hBulk2, fBulk2))
	if rep.Loaded || rep.Reread < 300 {
		t.Fatalf("report %+v: want the population brought up to date, the 300 customers with new events read again", rep)
	}

	// Everything else that writes a customer, through the per-customer
	// paths on both: profile changes, merges, a new customer, a segment
	// deleted and created again under its id, a rule changed, a rescore.
	// The bulk store's population must follow all of it, customer by
	// customer.
	hOld3, fOld3 := old.historyCounts()
	hBulk3, fBulk3 := bulk.historyCounts()
	extra, extraEvents := bulkPopulation(1, 4)
	extra[0].CustomerId = "c99999"
	for _, ev := range extraEvents {
		ev.CustomerId = "c99999"
	}
	changed := make([]*profilev1.Customer, 0, 30)
	for _, c := range customers[20:40] {
		c = proto.Clone(c).(*profilev1.Customer)
		c.Tags, c.Region = []string{"vip", "b2b-wholesale"}, &profilev1.Region{Country: "FR"}
		changed = append(changed, c)
	}
	for _, c := range customers[60:70] {
		c = proto.Clone(c).(*profilev1.Customer)
		c.DisplayName = "renamed" // read by no rule: no membership or timer changes
		changed = append(changed, c)
	}
	for _, e := range []*bulkEnv{old, bulk} {
		e.feedApply(tenant, "customer.updated", asMessages(changed)...)
		e.feedApply(tenant, "customer.merged",
			&profilev1.Customer{CustomerId: "c00050", MergedInto: "c00051"},
			&profilev1.Customer{CustomerId: "c00052", MergedInto: "c00053"})
		e.feedApply(tenant, "customer.created", extra[0])
		e.feedApply(tenant, "event.recorded", asMessages(extraEvents)...)
		if err := e.st.DeleteSegment(ctx, tenant, "s05"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.st.CreateSegment(ctx, tenant, store.SegmentInput{ID: "s05", Name: "again",
			Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC), Rule: `features.purchases >= 3 && "vip" in customer.tags`}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.UpdateSegment(ctx, tenant, "s07", "", func(in *store.SegmentInput) error {
			in.Rule = `features.refunds >= 1 && features.purchases_30d <= 1`
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The service's periodic rescore writes scores too.
		if _, err := e.st.Rescore(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := old.st.Reevaluate(ctx, tenant, "s00"); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep, err = bulk.st.ReevaluateAll(ctx, tenant, "re-evaluated"); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "re-evaluation after every kind of write", old.dump(hOld3, fOld3), bulk.dump(hBulk3, fBulk3))
	if rep.Loaded {
		t.Fatalf("report %+v: want the population brought up to date", rep)
	}

	// Ten days on, the timers fire on both (nearly every customer's: a
	// rule reads tenure_days), then a full re-evaluation again.
	hOld4, fOld4 := old.historyCounts()
	hBulk4, fBulk4 := bulk.historyCounts()
	for _, e := range []*bulkEnv{old, bulk} {
		e.clk.Set(bulkBase.Add(55 * 24 * time.Hour))
		if _, _, err := e.st.FireDue(ctx, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Rescore(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := old.st.Reevaluate(ctx, tenant, "s00"); err != nil {
		t.Fatal(err)
	}
	if _, err = bulk.st.ReevaluateAll(ctx, tenant, "re-evaluated"); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "re-evaluation after timers fired", old.dump(hOld4, fOld4), bulk.dump(hBulk4, fBulk4))

	// Nothing changed since: a pass reads nobody again and writes nothing.
	rep, err = bulk.st.ReevaluateAll(ctx, tenant, "re-evaluated")
	if err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep.Loaded || rep.Reread != 0 || rep.Entered+rep.Left != 0 || rep.ScoresChanged+rep.TimersChanged != 0 {
		t.Fatalf("report %+v: want a pass over an unchanged population to read and write nothing", rep)
	}

	// A time rule defined without an evaluation, as a bulk import does: the
	// pass must compute every timer again, not keep those of the old rules.
	hOld5, fOld5 := old.historyCounts()
	hBulk5, fBulk5 := bulk.historyCounts()
	soon := store.SegmentInput{ID: "soon", Name: "seventy days", Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC),
		Rule: `days_since(features.last_purchase) == 70`}
	if _, _, err := old.st.CreateSegment(ctx, tenant, soon); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.DefineSegments(ctx, tenant, []store.SegmentInput{soon}); err != nil {
		t.Fatal(err)
	}
	if rep, err = bulk.st.ReevaluateAll(ctx, tenant, "segment created"); err != nil {
		t.Fatal(err)
	}
	if err := bulk.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep.Loaded || rep.TimersChanged == 0 {
		t.Fatalf("report %+v: want the population kept and timers changed", rep)
	}
	compareDumps(t, "a time rule defined", old.dump(hOld5, fOld5), bulk.dump(hBulk5, fBulk5))
}

func asMessages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// TestReevaluateAllWithConcurrentWriters writes between ReevaluateAll's
// snapshot and its write: purchases of customers the pass changes, through
// the feed, and a segment deleted. Nothing the pass writes may undo them:
// a per-customer re-evaluation of everyone right after the pass finds
// nothing to change, the deleted segment stays deleted, and every
// segment's size is its count of members.
func TestReevaluateAllWithConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	const tenant = "acme"
	e := newLoadedBulkEnv(t, tenant, 600, 5)
	var defs []store.SegmentInput
	for i, r := range bulkRules {
		defs = append(defs, store.SegmentInput{ID: fmt.Sprintf("s%02d", i), Name: fmt.Sprint("rule ", i),
			Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC), Rule: r})
	}
	if err := e.st.DefineSegments(ctx, tenant, defs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.ReevaluateAll(ctx, tenant, "segment created"); err != nil {
		t.Fatal(err)
	}

	// Forty days on, the pass changes many customers; before it writes,
	// five of them buy again and a segment is deleted.
	e.clk.Advance(40 * 24 * time.Hour)
	var bought []string
	e.st.BeforeBulkWrite(func(changed []string) {
		if len(changed) < 5 {
			t.Fatalf("the pass changes %d customers, want at least 5", len(changed))
		}
		bought = changed[:5]
		for k, id := range bought {
			order := fmt.Sprintf("%s-late%d", id, k)
			e.feedApply(tenant, "event.recorded", &profilev1.Event{EventId: order, CustomerId: id,
				OccurTime: timestamppb.New(e.clk.Now().Add(-time.Hour)),
				Kind:      &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order, Amount: &typev1.Money{AmountMinor: 30000, Currency: "EUR"}}}})
		}
		if err := e.st.DeleteSegment(ctx, tenant, "s03"); err != nil {
			t.Fatal(err)
		}
	})
	rep, err := e.st.ReevaluateAll(ctx, tenant, "re-evaluated")
	if err != nil {
		t.Fatal(err)
	}
	e.st.BeforeBulkWrite(nil)
	// The buyers at least; the deleted segment's members were written too.
	if rep.Redone < len(bought) {
		t.Errorf("report %+v: want the %d customers who bought during the pass evaluated again", rep, len(bought))
	}
	if _, err := e.st.GetSegment(ctx, tenant, "s03"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("the segment deleted during the pass: %v, want not found", err)
	}
	before := e.dump(nil, 0)
	e.st.UsePerCustomerPath() // the reference, from here on
	if _, _, _, err := e.st.Reevaluate(ctx, tenant, "s00"); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "a per-customer re-evaluation after the pass", before, e.dump(nil, 0))
	sizes := map[string]int64{}
	if err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("members")).ForEach(func(k, _ []byte) error {
			sizes[strings.Split(string(k), "\x00")[1]]++
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	segs, _, err := e.st.ListSegments(ctx, tenant, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		if seg.Size != sizes[seg.ID] {
			t.Errorf("segment %s: size %d, %d members", seg.ID, seg.Size, sizes[seg.ID])
		}
	}
	// The next pass reads the five again.
	if rep, err = e.st.ReevaluateAll(ctx, tenant, "re-evaluated"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PopulationMatchesFile(tenant); err != nil {
		t.Fatal(err)
	}
	if rep.Loaded || rep.Reread < len(bought) {
		t.Errorf("report %+v: want the buyers read again", rep)
	}
}

// TestIdlePopulationsAreEvicted: a population survives a sweep when a pass
// used it since the last one, and is dropped after a whole sweep without
// one; the next pass loads it again.
func TestIdlePopulationsAreEvicted(t *testing.T) {
	ctx := context.Background()
	const tenant = "acme"
	e := newLoadedBulkEnv(t, tenant, 200, 6)
	if err := e.st.DefineSegments(ctx, tenant, []store.SegmentInput{{ID: "s", Name: "buyers",
		Kind: int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC), Rule: bulkRules[0]}}); err != nil {
		t.Fatal(err)
	}
	pass := func() *store.FullReevaluation {
		t.Helper()
		rep, err := e.st.ReevaluateAll(ctx, tenant, "re-evaluated")
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if !pass().Loaded {
		t.Fatal("the first pass did not load the population")
	}
	for sweep, want := range []int{0, 0, 1} {
		if sweep == 1 && pass().Loaded {
			t.Fatal("a pass between sweeps loaded the population again")
		}
		if got := e.st.EvictIdlePopulations(); got != want {
			t.Fatalf("sweep %d evicted %d populations, want %d", sweep, got, want)
		}
	}
	if !pass().Loaded {
		t.Fatal("the pass after the eviction did not load the population again")
	}
}
