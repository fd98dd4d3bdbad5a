package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/store"
)

const acme = "acme"

func TestStateAndFeaturesFromTheProfileFeed(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"))
	e.purchase(acme, "c1", "o1", 10_000, t0.Add(-10*day))
	e.purchase(acme, "c1", "o2", 5_000, t0.Add(-40*day))
	e.refund(acme, "c1", "o1", 3_000, t0.Add(-5*day))
	// The first purchase's currency became the tenant's reporting currency:
	// a purchase in another counts, but not as money.
	e.record(acme, &profilev1.Event{EventId: "p-usd", CustomerId: "c1", OccurTime: timestamppb.New(t0.Add(-day)),
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o3", Amount: &typev1.Money{AmountMinor: 99_999, Currency: "USD"}}}})
	for i, id := range []string{"cx-1", "cx-1", "cx-2"} { // the same complaint twice counts once
		e.record(acme, &profilev1.Event{EventId: "cx" + string(rune('a'+i)), CustomerId: "c1", OccurTime: timestamppb.New(t0.Add(-3 * day)),
			Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: id}}})
	}
	csat, nps := int32(4), int32(9)
	e.record(acme, &profilev1.Event{EventId: "s1", CustomerId: "c1", OccurTime: timestamppb.New(t0.Add(-2 * day)),
		Kind: &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{Csat: &csat, Nps: &nps}}})
	// A type from a newer profile service is not ours to act on.
	e.apply(acme, "customer.frobbed", "c1", person("c1"))

	settings, err := e.st.Settings(ctx, acme)
	if err != nil || settings.Currency != "CNY" {
		t.Fatalf("settings = %+v, %v; want the first purchase's currency CNY", settings, err)
	}
	ts := func(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
	want := &segmentationv1.Features{
		FirstPurchase: ts(t0.Add(-40 * day)), LastPurchase: ts(t0.Add(-day)),
		Purchases: 3, Purchases_30D: 2, Purchases_90D: 3, Purchases_365D: 3,
		Monetary: 12_000, Monetary_30D: 7_000, Monetary_90D: 12_000, Monetary_365D: 12_000,
		AverageOrder: 6_000, MeanInterpurchaseDays: 19.5, TenureDays: 100,
		Complaints: 2, Csat: 4, Nps: 9, Refunds: 1, FirstSeen: ts(t0.Add(-100 * day)),
	}
	cs := e.scores(acme, "c1")
	if got := convert.FeaturesToProto(cs.Features); !proto.Equal(got, want) {
		t.Fatalf("features\n got  %v\n want %v", got, want)
	}
	if cs.Score != (domain.Score{}) || !cs.ScoreTime.IsZero() || len(cs.Segments) != 0 {
		t.Fatalf("an unscored customer without segments: %+v", cs)
	}
	// Features are derived at the clock's now: 25 days on, the 30-day
	// window has lost o1 and tenure has grown.
	e.clk.Set(t0.Add(25 * day))
	f := e.scores(acme, "c1").Features
	if f.Purchases30d != 1 || f.Monetary30d != 0 || f.TenureDays != 125 {
		t.Fatalf("features 25 days later: %+v", f)
	}

	_, err = e.st.CustomerScores(ctx, acme, "nobody")
	wantErr(t, err, fault.ErrNotFound)
	e.wantChanges() // no segments, no scoring: nothing on the feed
}

func TestCreateSegmentEvaluatesExistingCustomers(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	e.purchase(acme, "c1", "o1", 60_000, t0.Add(-day))
	e.purchase(acme, "c2", "o2", 1_000, t0.Add(-day))

	in := store.SegmentInput{ID: "big", Name: "Big", Kind: dynamic, Rule: `features.monetary >= 50000`}
	seg := e.create(acme, in)
	if seg.Size != 1 || seg.Revision != 1 || !seg.Created.Equal(t0) {
		t.Fatalf("created segment %+v", seg)
	}
	e.wantMembers(acme, "big", "c1")
	e.wantChanges(entered(acme, "big", "c1", "segment created"))
	if ss := e.scores(acme, "c1").Segments; len(ss) != 1 || ss[0].SegmentID != "big" || !ss[0].Since.Equal(t0) {
		t.Fatalf("c1's segments %+v", ss)
	}
	sizes, err := e.st.Sizes(ctx, acme, "big")
	if err != nil || len(sizes) != 1 || sizes[0].Size != 1 || !sizes[0].Day.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("sizes %+v, %v", sizes, err)
	}

	// A retry returns the stored segment and changes nothing.
	again, created, err := e.st.CreateSegment(ctx, acme, in)
	if err != nil || created || again.Revision != 1 || again.Size != 1 {
		t.Fatalf("retry: %+v created=%v err=%v", again, created, err)
	}
	e.wantChanges()
	// The same id with other content is refused.
	other := in
	other.Rule = `features.monetary >= 1`
	_, _, err = e.st.CreateSegment(ctx, acme, other)
	wantErr(t, err, fault.ErrAlreadyExists)
	e.wantMembers(acme, "big", "c1")
	e.wantChanges()
}

func TestEventsFlipMembershipOncePerChange(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"))
	e.create(acme, store.SegmentInput{ID: "big", Kind: dynamic, Rule: `features.monetary >= 50000`})
	e.create(acme, store.SegmentInput{ID: "repeat", Kind: dynamic, Rule: `features.purchases >= 2`})
	e.wantChanges()

	e.purchase(acme, "c1", "o1", 40_000, t0.Add(-3*day))
	e.wantChanges()
	e.purchase(acme, "c1", "o2", 20_000, t0.Add(-2*day)) // 60,000 in two purchases: both rules now hold
	e.wantChanges(entered(acme, "big", "c1", "event.purchase"), entered(acme, "repeat", "c1", "event.purchase"))
	e.purchase(acme, "c1", "o3", 1, t0.Add(-day)) // still both: no event
	e.wantChanges()
	e.refund(acme, "c1", "o1", 15_000, t0.Add(-day)) // 45,001: below again
	e.wantChanges(left(acme, "big", "c1", "event.refund"))
	e.wantMembers(acme, "big")
	e.wantMembers(acme, "repeat", "c1")
	e.purchase(acme, "c1", "o4", 5_000, t0)
	e.wantChanges(entered(acme, "big", "c1", "event.purchase"))

	// Other kinds of events re-evaluate too; c2 never qualifies.
	e.record(acme, &profilev1.Event{EventId: "ref-1", CustomerId: "c2", OccurTime: timestamppb.New(t0),
		Kind: &profilev1.Event_Referral{Referral: &profilev1.Referral{}}})
	e.wantChanges()
	e.wantMembers(acme, "big", "c1")

	// Each membership has its history, with the reasons.
	ex, err := e.st.Explain(ctx, acme, "big", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, h := range ex.History {
		hist = append(hist, map[bool]string{true: "in ", false: "out "}[h.Entered]+h.Reason)
	}
	if want := []string{"in event.purchase", "out event.refund", "in event.purchase"}; !slices.Equal(hist, want) {
		t.Fatalf("history %q, want %q", hist, want)
	}
}

func TestDateRuleFiresOnItsTimerExactlyOnce(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"))
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
	if next, err := e.st.NextTimer(); err != nil || !next.IsZero() {
		t.Fatalf("a timer %v (%v) before anyone bought", next, err)
	}

	last := t0.Add(-10 * day)
	e.purchase(acme, "c1", "o1", 100, last)
	// days_since(last) is 10; it exceeds 30 once 31 whole days have passed.
	due := last.Add(31 * day)
	next, err := e.st.NextTimer()
	if err != nil || !next.Equal(due) {
		t.Fatalf("next timer %v (%v), want %v", next, err, due)
	}
	e.wantChanges()

	// A second before it is due: nothing fires.
	e.clk.Set(due.Add(-time.Second))
	fired, next, err := e.st.FireDue(ctx, e.clk.Now())
	if err != nil || fired != 0 || !next.Equal(due) {
		t.Fatalf("FireDue before due: fired %d, next %v, err %v", fired, next, err)
	}
	e.wantChanges()
	e.wantMembers(acme, "lapsed")

	// At due it fires once, with the reason "time".
	e.clk.Set(due)
	fired, _, err = e.st.FireDue(ctx, due)
	if err != nil || fired != 1 {
		t.Fatalf("FireDue at due: fired %d, err %v", fired, err)
	}
	e.wantChanges(entered(acme, "lapsed", "c1", "time"))
	e.wantMembers(acme, "lapsed", "c1")
	fired, _, err = e.st.FireDue(ctx, due)
	if err != nil || fired != 0 {
		t.Fatalf("second FireDue at the same time: fired %d, err %v", fired, err)
	}
	e.wantChanges()

	// Buying again brings the customer back and replaces the timer: the
	// next one is 31 days after the new purchase, with none left before it.
	e.purchase(acme, "c1", "o2", 100, due)
	e.wantChanges(left(acme, "lapsed", "c1", "event.purchase"))
	if next, err := e.st.NextTimer(); err != nil || !next.Equal(due.Add(31*day)) {
		t.Fatalf("next timer after buying again %v (%v), want %v", next, err, due.Add(31*day))
	}
	fired, _, err = e.st.FireDue(ctx, due.Add(31*day-time.Second))
	if err != nil || fired != 0 {
		t.Fatalf("a stale timer fired: %d, %v", fired, err)
	}
	e.wantChanges()
}

func TestRuntimeErrorInARuleNeverStallsTheFeed(t *testing.T) {
	e := newEnv(t)
	plan := person("c1")
	plan.Attributes = map[string]string{"plan": "x"}
	e.customers(acme, plan, person("c2"))
	// c2 has no "plan" attribute: the rule fails at runtime for c2.
	e.create(acme, store.SegmentInput{ID: "plan-x", Kind: dynamic, Rule: `customer.attributes["plan"] == "x"`})
	e.wantMembers(acme, "plan-x", "c1")
	e.wantChanges(entered(acme, "plan-x", "c1", "segment created"))

	// Events for c2 still apply; c2 is just not a member.
	e.purchase(acme, "c2", "o1", 100, t0)
	e.customers(acme, person("c3"))
	if f := e.scores(acme, "c2").Features; f.Purchases != 1 {
		t.Fatalf("c2's purchase was not applied: %+v", f)
	}
	e.wantMembers(acme, "plan-x", "c1")
	e.wantChanges()

	// Once the key is there, the rule holds.
	c2 := person("c2")
	c2.Attributes = map[string]string{"plan": "x"}
	e.apply(acme, "customer.updated", "c2", c2)
	e.wantChanges(entered(acme, "plan-x", "c2", "customer.updated"))
	e.wantMembers(acme, "plan-x", "c1", "c2")

	// Explain reports the error instead of failing.
	ex, err := e.st.Explain(ctx, acme, "plan-x", "c3")
	if err != nil || ex.Member || len(ex.Clauses) == 0 || ex.Clauses[0].Held {
		t.Fatalf("explain for c3: %+v, %v", ex, err)
	}
}

func TestStaticSegmentMembersByHand(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	e.create(acme, store.SegmentInput{ID: "vip", Kind: static})
	e.create(acme, store.SegmentInput{ID: "big", Kind: dynamic, Rule: `features.monetary > 0`})
	e.wantMembers(acme, "vip")

	n, err := e.st.EditMembers(ctx, acme, "vip", []string{"c1", "c2"}, true)
	if err != nil || n != 2 {
		t.Fatalf("add: %d, %v", n, err)
	}
	e.wantChanges(entered(acme, "vip", "c1", "added by hand"), entered(acme, "vip", "c2", "added by hand"))
	// Adding a member again adds nothing.
	if n, err := e.st.EditMembers(ctx, acme, "vip", []string{"c2"}, true); err != nil || n != 0 {
		t.Fatalf("add again: %d, %v", n, err)
	}
	// An unknown customer is refused, naming it, and nothing is added.
	_, err = e.st.EditMembers(ctx, acme, "vip", []string{"c3", "nobody"}, true)
	wantErr(t, err, fault.ErrInvalid, "customer_ids[1]")
	e.wantMembers(acme, "vip", "c1", "c2")
	// A dynamic segment's members are its rule's to decide.
	_, err = e.st.EditMembers(ctx, acme, "big", []string{"c1"}, true)
	wantErr(t, err, fault.ErrInvalid, "segment_id")
	_, err = e.st.EditMembers(ctx, acme, "big", []string{"c1"}, false)
	wantErr(t, err, fault.ErrInvalid, "segment_id")
	_, err = e.st.EditMembers(ctx, acme, "nosuch", []string{"c1"}, true)
	wantErr(t, err, fault.ErrNotFound)
	e.wantChanges()

	// Removing: non-members are skipped.
	n, err = e.st.EditMembers(ctx, acme, "vip", []string{"c1", "c3", "nobody"}, false)
	if err != nil || n != 1 {
		t.Fatalf("remove: %d, %v", n, err)
	}
	e.wantChanges(left(acme, "vip", "c1", "removed by hand"))
	e.wantMembers(acme, "vip", "c2")

	// Events do not touch a static segment.
	e.purchase(acme, "c3", "o1", 100, t0)
	e.wantChanges(entered(acme, "big", "c3", "event.purchase"))
	e.wantMembers(acme, "vip", "c2")
}

func TestUpdateSegmentReevaluatesAChangedRule(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	e.purchase(acme, "c1", "o1", 60_000, t0)
	e.purchase(acme, "c2", "o2", 1_000, t0)
	e.create(acme, store.SegmentInput{ID: "big", Name: "Big", Kind: dynamic, Rule: `features.monetary >= 50000`})
	e.drain()

	setRule := func(rule string) func(*store.SegmentInput) error {
		return func(in *store.SegmentInput) error { in.Rule = rule; return nil }
	}
	e.clk.Advance(time.Hour)
	seg, err := e.st.UpdateSegment(ctx, acme, "big", store.Etag(1), setRule(`features.monetary >= 500`))
	if err != nil || seg.Revision != 2 || seg.Size != 2 || !seg.Updated.Equal(t0.Add(time.Hour)) || !seg.Created.Equal(t0) {
		t.Fatalf("update: %+v, %v", seg, err)
	}
	e.wantChanges(entered(acme, "big", "c2", "rule changed"))
	e.wantMembers(acme, "big", "c1", "c2")

	// A stale etag is a conflict and changes nothing.
	_, err = e.st.UpdateSegment(ctx, acme, "big", store.Etag(1), setRule(`features.monetary >= 0`))
	wantErr(t, err, fault.ErrConflict)
	e.wantChanges()

	// Without an etag the update is unconditional.
	if _, err := e.st.UpdateSegment(ctx, acme, "big", "", setRule(`features.monetary >= 100000`)); err != nil {
		t.Fatal(err)
	}
	e.wantChanges(left(acme, "big", "c1", "rule changed"), left(acme, "big", "c2", "rule changed"))
	e.wantMembers(acme, "big")

	// A new name only: no re-evaluation, no feed events.
	seg, err = e.st.UpdateSegment(ctx, acme, "big", store.Etag(3), func(in *store.SegmentInput) error { in.Name = "Very big"; return nil })
	if err != nil || seg.Name != "Very big" || seg.Revision != 4 {
		t.Fatalf("rename: %+v, %v", seg, err)
	}
	e.wantChanges()

	// The change function's error aborts the update.
	_, err = e.st.UpdateSegment(ctx, acme, "big", "", func(*store.SegmentInput) error { return fault.InvalidField("segment.rule", "bad") })
	wantErr(t, err, fault.ErrInvalid, "segment.rule")
	if got, _ := e.st.GetSegment(ctx, acme, "big"); got.Revision != 4 {
		t.Fatalf("a refused update changed the segment: %+v", got)
	}
	_, err = e.st.UpdateSegment(ctx, acme, "nosuch", "", setRule("true"))
	wantErr(t, err, fault.ErrNotFound)

	// ReevaluateSegment with nothing changed moves no one. It is the full
	// re-evaluation, which rescores too: the scores are brought up to date
	// first, so that only the re-evaluation's own changes would show.
	if _, err := e.st.Rescore(ctx, acme); err != nil {
		t.Fatal(err)
	}
	e.drain()
	size, in, out, err := e.st.Reevaluate(ctx, acme, "big")
	if err != nil || size != 0 || in != 0 || out != 0 {
		t.Fatalf("reevaluate: %d %d %d %v", size, in, out, err)
	}
	e.wantChanges()
}

func TestDeleteSegmentEveryMemberLeaves(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	e.purchase(acme, "c1", "o1", 100, t0)
	e.purchase(acme, "c2", "o2", 100, t0)
	e.create(acme, store.SegmentInput{ID: "buyers", Kind: dynamic, Rule: `features.purchases > 0`})
	e.create(acme, store.SegmentInput{ID: "other", Kind: dynamic, Rule: `features.purchases > 0`})
	e.drain()

	if err := e.st.DeleteSegment(ctx, acme, "buyers"); err != nil {
		t.Fatal(err)
	}
	e.wantChanges(left(acme, "buyers", "c1", "segment deleted"), left(acme, "buyers", "c2", "segment deleted"))
	_, err := e.st.GetSegment(ctx, acme, "buyers")
	wantErr(t, err, fault.ErrNotFound)
	_, err = e.st.Sizes(ctx, acme, "buyers")
	wantErr(t, err, fault.ErrNotFound)
	wantErr(t, e.st.DeleteSegment(ctx, acme, "buyers"), fault.ErrNotFound)
	if ss := e.scores(acme, "c1").Segments; len(ss) != 1 || ss[0].SegmentID != "other" {
		t.Fatalf("c1 still lists %+v", ss)
	}
	// Later events no longer evaluate it.
	e.purchase(acme, "c3", "o3", 100, t0)
	e.wantChanges(entered(acme, "other", "c3", "event.purchase"))

	// The id can be used again, from scratch: no members, sizes or
	// history of the deleted segment.
	e.create(acme, store.SegmentInput{ID: "buyers", Kind: static})
	e.wantMembers(acme, "buyers")
	if sizes, err := e.st.Sizes(ctx, acme, "buyers"); err != nil || len(sizes) != 0 {
		t.Fatalf("sizes of the new segment: %+v, %v", sizes, err)
	}
	for _, c := range []string{"c1", "c2"} {
		if ex, err := e.st.Explain(ctx, acme, "buyers", c); err != nil || ex.Member || len(ex.History) != 0 {
			t.Fatalf("the new segment explains %s with %+v, %v", c, ex, err)
		}
	}
	// The history of the segments that stay is kept.
	if ex, err := e.st.Explain(ctx, acme, "other", "c1"); err != nil || len(ex.History) != 1 {
		t.Fatalf("other's history of c1: %+v, %v", ex, err)
	}
}

func TestExplainGivesClausesHistoryAndNextTime(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"))
	last := t0.Add(-10 * day)
	e.purchase(acme, "c1", "o1", 100, last)
	rule := `features.purchases > 0 && days_since(features.last_purchase) > 30`
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: rule})

	ex, err := e.st.Explain(ctx, acme, "lapsed", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Member || ex.Rule != rule || !ex.Time.Equal(t0) || !ex.Next.Equal(last.Add(31*day)) || len(ex.History) != 0 {
		t.Fatalf("explain before: %+v", ex)
	}
	if len(ex.Clauses) < 3 || ex.Clauses[0].Held {
		t.Fatalf("clauses before: %+v", ex.Clauses)
	}
	var sawDays bool
	for _, c := range ex.Clauses {
		if c.Expression == "days_since(features.last_purchase)" {
			sawDays = c.Value == "10"
		}
	}
	if !sawDays {
		t.Fatalf("no clause days_since(features.last_purchase) = 10 in %+v", ex.Clauses)
	}

	e.clk.Set(last.Add(31 * day))
	if _, _, err := e.st.FireDue(ctx, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	ex, err = e.st.Explain(ctx, acme, "lapsed", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Member || !ex.Clauses[0].Held || len(ex.History) != 1 || !ex.History[0].Entered ||
		ex.History[0].Reason != "time" || !ex.History[0].Time.Equal(last.Add(31*day)) {
		t.Fatalf("explain after: %+v", ex)
	}

	// A static segment has no rule and no clauses, only history.
	e.create(acme, store.SegmentInput{ID: "vip", Kind: static})
	if _, err := e.st.EditMembers(ctx, acme, "vip", []string{"c1"}, true); err != nil {
		t.Fatal(err)
	}
	ex, err = e.st.Explain(ctx, acme, "vip", "c1")
	if err != nil || !ex.Member || ex.Rule != "" || len(ex.Clauses) != 0 || !ex.Next.IsZero() || len(ex.History) != 1 {
		t.Fatalf("explain static: %+v, %v", ex, err)
	}
	_, err = e.st.Explain(ctx, acme, "vip", "nobody")
	wantErr(t, err, fault.ErrNotFound)
	_, err = e.st.Explain(ctx, acme, "nosuch", "c1")
	wantErr(t, err, fault.ErrNotFound)
}

func TestPreviewCountsWithoutSaving(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	e.purchase(acme, "c1", "o1", 100, t0)
	e.purchase(acme, "c3", "o3", 100, t0)
	rule, err := e.st.CompileRule(`features.purchases > 0`)
	if err != nil {
		t.Fatal(err)
	}
	count, evaluated, ids, err := e.st.Preview(ctx, acme, rule, 1)
	if err != nil || count != 2 || evaluated != 3 || !slices.Equal(ids, []string{"c1"}) {
		t.Fatalf("preview: count %d evaluated %d sample %v err %v", count, evaluated, ids, err)
	}
	count, _, ids, err = e.st.Preview(ctx, acme, rule, 10)
	if err != nil || count != 2 || !slices.Equal(ids, []string{"c1", "c3"}) {
		t.Fatalf("preview: count %d sample %v err %v", count, ids, err)
	}
	// A rule failing at runtime counts nobody.
	bad, err := e.st.CompileRule(`customer.attributes["plan"] == "x"`)
	if err != nil {
		t.Fatal(err)
	}
	if count, evaluated, _, err := e.st.Preview(ctx, acme, bad, 10); err != nil || count != 0 || evaluated != 3 {
		t.Fatalf("preview of a failing rule: %d of %d, %v", count, evaluated, err)
	}
	if count, evaluated, _, err := e.st.Preview(ctx, "globex", rule, 10); err != nil || count != 0 || evaluated != 0 {
		t.Fatalf("preview in an empty tenant: %d of %d, %v", count, evaluated, err)
	}
	e.wantChanges()
	if segs, _, err := e.st.ListSegments(ctx, acme, "", 100); err != nil || len(segs) != 0 {
		t.Fatalf("preview saved something: %+v, %v", segs, err)
	}
}

func TestMergeMovesStateAndStaticMemberships(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("a"), person("b"), person("z"))
	e.purchase(acme, "a", "a1", 30_000, t0.Add(-3*day))
	e.purchase(acme, "b", "b1", 15_000, t0.Add(-2*day))
	e.purchase(acme, "b", "b2", 10_000, t0.Add(-day))
	e.create(acme, store.SegmentInput{ID: "big", Kind: dynamic, Rule: `features.monetary >= 50000`})
	e.create(acme, store.SegmentInput{ID: "buyers", Kind: dynamic, Rule: `features.purchases >= 1`})
	e.create(acme, store.SegmentInput{ID: "vip", Kind: static})
	e.create(acme, store.SegmentInput{ID: "vip2", Kind: static})
	if _, err := e.st.EditMembers(ctx, acme, "vip", []string{"b"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.EditMembers(ctx, acme, "vip2", []string{"a", "b", "z"}, true); err != nil {
		t.Fatal(err)
	}
	e.drain()

	src := person("b")
	src.MergedInto = "a"
	e.apply(acme, "customer.merged", "b", src)
	e.wantChanges(
		left(acme, "buyers", "b", "customer.merged"),
		left(acme, "vip", "b", "customer.merged"),
		entered(acme, "vip", "a", "customer.merged"),
		left(acme, "vip2", "b", "customer.merged"),
		entered(acme, "big", "a", "customer.merged"),
	)
	e.wantMembers(acme, "big", "a")
	e.wantMembers(acme, "buyers", "a")
	e.wantMembers(acme, "vip", "a")
	e.wantMembers(acme, "vip2", "a", "z")
	f := e.scores(acme, "a").Features
	if f.Purchases != 3 || f.Monetary != 55_000 || !f.FirstPurchase.Equal(t0.Add(-3*day)) || !f.LastPurchase.Equal(t0.Add(-day)) {
		t.Fatalf("merged features %+v", f)
	}
	_, err := e.st.CustomerScores(ctx, acme, "b")
	wantErr(t, err, fault.ErrNotFound)

	// The profile service follows a merge with the target's update: no change.
	e.apply(acme, "customer.updated", "a", person("a"))
	e.wantChanges()
	// Erasing the merged-away record in the profile service does not bring
	// it back as a customer.
	gone := person("b")
	gone.MergedInto, gone.Erased = "a", true
	e.apply(acme, "customer.erased", "b", gone)
	e.wantChanges()
	_, err = e.st.CustomerScores(ctx, acme, "b")
	wantErr(t, err, fault.ErrNotFound)
	everyone, err := e.st.CompileRule("true")
	if err != nil {
		t.Fatal(err)
	}
	if n, _, ids, err := e.st.Preview(ctx, acme, everyone, 10); err != nil || n != 2 || !slices.Equal(ids, []string{"a", "z"}) {
		t.Fatalf("customers after the erasure: %d %v %v", n, ids, err)
	}
	// The merged-away customer is gone from scoring too.
	if n, err := e.st.Rescore(ctx, acme); err != nil || n != 1 {
		t.Fatalf("rescore after merge: %d, %v", n, err)
	}
	for _, c := range e.drain() {
		if c.scores.GetCustomerId() != "a" {
			t.Fatalf("rescore after merge: %v", c)
		}
	}
}

func TestRescoreEmitsOnlyChangedScores(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"), person("c3"), person("c4"), person("c5"))
	e.purchase(acme, "c1", "o1", 1_000, t0.Add(-50*day))
	e.purchase(acme, "c2", "o2", 2_000, t0.Add(-40*day))
	e.purchase(acme, "c2", "o3", 3_000, t0.Add(-30*day))
	e.purchase(acme, "c3", "o4", 20_000, t0.Add(-20*day))
	e.purchase(acme, "c3", "o5", 20_000, t0.Add(-10*day))
	e.purchase(acme, "c3", "o6", 20_000, t0.Add(-5*day))
	e.purchase(acme, "c4", "o7", 100, t0.Add(-day))
	// c5 never bought: it stays unscored and is never announced. With four
	// ranked customers the best quintile reached is 1+floor(5·3/4) = 4.
	all := []string{"c1", "c2", "c3", "c4", "c5"}
	snapshot := func() map[string]domain.Score {
		out := map[string]domain.Score{}
		for _, c := range all {
			out[c] = e.scores(acme, c).Score
		}
		return out
	}

	n, err := e.st.Rescore(ctx, acme)
	if err != nil || n != 4 {
		t.Fatalf("first rescore: %d, %v", n, err)
	}
	scored := snapshot()
	var announced []string
	for _, c := range e.drain() {
		if c.typ != store.TypeScoresChanged || c.scores.Before != nil || !c.scores.After.GetScoreTime().AsTime().Equal(t0) {
			t.Fatalf("first rescore event %v: %v", c, c.scores)
		}
		want := convert.ScoreToProto(scored[c.scores.CustomerId])
		want.ScoreTime = timestamppb.New(t0)
		if !proto.Equal(c.scores.After, want) {
			t.Fatalf("%s: event says %v, store has %v", c.scores.CustomerId, c.scores.After, want)
		}
		announced = append(announced, c.scores.CustomerId)
	}
	if !slices.Equal(announced, []string{"c1", "c2", "c3", "c4"}) {
		t.Fatalf("announced %v", announced)
	}
	if s := scored["c3"]; s.Tier != domain.TierPlatinum || s.Contribution != 60_000 || s.R != 3 || s.F != 4 || s.M != 4 {
		t.Fatalf("c3 scored %+v", s)
	}
	if s := scored["c5"]; s != (domain.Score{}) {
		t.Fatalf("c5 scored %+v", s)
	}
	if st := e.scores(acme, "c1").ScoreTime; !st.Equal(t0) {
		t.Fatalf("score time %v", st)
	}

	// Nothing changed: rescoring again emits nothing.
	if n, err := e.st.Rescore(ctx, acme); err != nil || n != 0 {
		t.Fatalf("second rescore: %d, %v", n, err)
	}
	e.wantChanges()

	// A rule on scores follows the rescoring, not the event.
	e.create(acme, store.SegmentInput{ID: "platinum", Kind: dynamic, Rule: `scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM`})
	e.wantChanges(entered(acme, "platinum", "c3", "segment created"))
	e.purchase(acme, "c1", "o8", 100_000, t0)
	e.wantChanges()

	e.clk.Advance(time.Minute)
	n, err = e.st.Rescore(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot()
	var changed []string
	for _, c := range all {
		if after[c] != scored[c] {
			changed = append(changed, c)
		}
	}
	if n != len(changed) || !slices.Contains(changed, "c1") || !slices.Contains(changed, "c3") {
		t.Fatalf("rescore reported %d changed; scores changed for %v", n, changed)
	}
	announced = nil
	var memberships []string
	for _, c := range e.drain() {
		switch c.typ {
		case store.TypeScoresChanged:
			id := c.scores.CustomerId
			before := convert.ScoreToProto(scored[id])
			if !proto.Equal(c.scores.Before, before) {
				t.Fatalf("%s: before %v, want %v", id, c.scores.Before, before)
			}
			announced = append(announced, id)
		default:
			memberships = append(memberships, c.String())
		}
	}
	if !slices.Equal(announced, changed) {
		t.Fatalf("announced %v, changed %v", announced, changed)
	}
	if want := []string{entered(acme, "platinum", "c1", "scores.changed"), left(acme, "platinum", "c3", "scores.changed")}; !slices.Equal(memberships, want) {
		t.Fatalf("membership events %q, want %q", memberships, want)
	}
	if n, err := e.st.Rescore(ctx, acme); err != nil || n != 0 {
		t.Fatalf("third rescore: %d, %v", n, err)
	}
	e.wantChanges()
}

func TestTenantsAreIsolated(t *testing.T) {
	e := newEnv(t)
	const globex = "globex"
	// The same customer and segment ids in two tenants, with other data.
	e.customers(acme, person("c1"), person("c2"))
	e.customers(globex, person("c1"), person("c2"))
	e.purchase(acme, "c1", "o1", 60_000, t0.Add(-40*day))
	e.purchase(globex, "c1", "o1", 100, t0.Add(-day))
	for _, tenant := range []string{acme, globex} {
		e.create(tenant, store.SegmentInput{ID: "big", Kind: dynamic, Rule: `features.monetary >= 50000`})
		e.create(tenant, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
		e.create(tenant, store.SegmentInput{ID: "vip", Kind: static})
	}
	e.wantChanges(entered(acme, "big", "c1", "segment created"), entered(acme, "lapsed", "c1", "segment created"))
	e.wantMembers(acme, "big", "c1")
	e.wantMembers(globex, "big")
	e.wantMembers(globex, "lapsed")
	if f := e.scores(globex, "c1").Features; f.Monetary != 100 {
		t.Fatalf("globex c1 features %+v", f)
	}

	if _, err := e.st.EditMembers(ctx, acme, "vip", []string{"c2"}, true); err != nil {
		t.Fatal(err)
	}
	e.wantMembers(globex, "vip")
	// A customer of acme only is unknown to globex.
	e.customers(acme, person("only-acme"))
	_, err := e.st.EditMembers(ctx, globex, "vip", []string{"only-acme"}, true)
	wantErr(t, err, fault.ErrInvalid, "customer_ids[0]")
	_, err = e.st.CustomerScores(ctx, globex, "only-acme")
	wantErr(t, err, fault.ErrNotFound)

	// Timers, scores, merges and deletes stay in their tenant.
	e.clk.Set(t0.Add(30 * day))
	if fired, _, err := e.st.FireDue(ctx, e.clk.Now()); err != nil || fired != 1 {
		t.Fatalf("FireDue: %d, %v", fired, err)
	}
	e.wantChanges(entered(acme, "vip", "c2", "added by hand"), entered(globex, "lapsed", "c1", "time"))
	if n, err := e.st.Rescore(ctx, globex); err != nil || n != 1 {
		t.Fatalf("rescore globex: %d, %v", n, err)
	}
	if s := e.scores(acme, "c1"); s.Score != (domain.Score{}) || !s.ScoreTime.IsZero() {
		t.Fatalf("rescoring globex scored acme: %+v", s)
	}
	src := person("c2")
	src.MergedInto = "c1"
	e.apply(globex, "customer.merged", "c2", src)
	e.scores(acme, "c2")
	if err := e.st.DeleteSegment(ctx, globex, "vip"); err != nil {
		t.Fatal(err)
	}
	e.wantMembers(acme, "vip", "c2")
	if ex, err := e.st.Explain(ctx, acme, "vip", "c2"); err != nil || len(ex.History) != 1 {
		t.Fatalf("deleting globex's vip touched acme's history: %+v, %v", ex, err)
	}
	for _, c := range e.drain() {
		if c.tenant != globex {
			t.Fatalf("a change in globex made an event in %s: %v", c.tenant, c)
		}
	}
	if _, err := e.st.UpdateSettings(ctx, globex, func(s *domain.Settings) error { s.PlatinumShare = 0.5; return nil }); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.st.Settings(ctx, acme); s.PlatinumShare != domain.DefaultPlatinumShare {
		t.Fatalf("acme settings %+v", s)
	}
	// Each tenant's feed holds only its own events.
	evs, err := e.feed.Read(globex, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Tenant != globex {
			t.Fatalf("globex's feed has %v", ev)
		}
	}
	segs, _, err := e.st.ListSegments(ctx, globex, "", 100)
	if err != nil || len(segs) != 2 {
		t.Fatalf("globex segments %+v, %v", segs, err)
	}
}

func TestReevaluateCatchesUpWithTime(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"))
	e.purchase(acme, "c1", "o1", 100, t0.Add(-10*day))
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
	e.create(acme, store.SegmentInput{ID: "vip", Kind: static})
	if _, err := e.st.EditMembers(ctx, acme, "vip", []string{"c2"}, true); err != nil {
		t.Fatal(err)
	}
	e.drain()

	// Past the timer's due time, before it fired: the operator's re-evaluation
	// moves c1 in and replaces the timer, so it does not fire again.
	e.clk.Set(t0.Add(30 * day))
	size, in, out, err := e.st.Reevaluate(ctx, acme, "lapsed")
	if err != nil || size != 1 || in != 1 || out != 0 {
		t.Fatalf("reevaluate: size %d entered %d left %d, %v", size, in, out, err)
	}
	// The re-evaluation is the full one, which scores c1 (never rescored
	// here) on the way.
	e.wantChanges("acme scores.changed c1", entered(acme, "lapsed", "c1", "re-evaluated"))
	if fired, _, err := e.st.FireDue(ctx, e.clk.Now()); err != nil || fired != 0 {
		t.Fatalf("the replaced timer fired: %d, %v", fired, err)
	}
	// A static segment is what its list says.
	if size, in, out, err := e.st.Reevaluate(ctx, acme, "vip"); err != nil || size != 1 || in != 0 || out != 0 {
		t.Fatalf("reevaluate static: %d %d %d %v", size, in, out, err)
	}
	_, _, _, err = e.st.Reevaluate(ctx, acme, "nosuch")
	wantErr(t, err, fault.ErrNotFound)
	e.wantChanges()
}

func TestFireDueWorksThroughManyTimers(t *testing.T) {
	e := newEnv(t)
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
	// More customers than one firing transaction takes, with due times a
	// minute apart; applied in one transaction, as the follower batches.
	const n = 1200
	err := e.db.Update(ctx, func(tx *bolt.Tx) error {
		for i := range n {
			id := fmt.Sprintf("c%04d", i)
			for _, ev := range []struct {
				typ string
				msg proto.Message
			}{
				{"customer.created", person(id)},
				{"event.recorded", &profilev1.Event{EventId: "p-" + id, CustomerId: id, OccurTime: timestamppb.New(t0.Add(-day + time.Duration(i)*time.Minute)),
					Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: id, Amount: cny(100)}}}},
			} {
				a, err := anypb.New(ev.msg)
				if err != nil {
					return err
				}
				e.seq++
				if err := e.st.ApplyProfileEvent(ctx, tx, &feedv1.Event{Sequence: e.seq, Tenant: acme, Type: ev.typ, Key: id, Payload: a}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	first := t0.Add(30 * day)
	if next, _ := e.st.NextTimer(); !next.Equal(first) {
		t.Fatalf("first timer %v, want %v", next, first)
	}
	// After "downtime", the overdue timers fire in due order, each once;
	// the one not yet due stays.
	now := first.Add((n - 2) * time.Minute)
	fired, next, err := e.st.FireDue(ctx, now)
	if err != nil || fired != n-1 || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("FireDue: fired %d next %v err %v; want %d, %v", fired, next, err, n-1, now.Add(time.Minute))
	}
	var order []string
	for _, c := range e.drain() {
		if c.typ != store.TypeSegmentEntered || c.member.Reason != "time" {
			t.Fatalf("unexpected change %v", c)
		}
		order = append(order, c.member.CustomerId)
	}
	if len(order) != n-1 || !slices.IsSorted(order) {
		t.Fatalf("%d entered, sorted %v", len(order), slices.IsSorted(order))
	}
	if seg, _ := e.st.GetSegment(ctx, acme, "lapsed"); seg.Size != n-1 {
		t.Fatalf("size %d", seg.Size)
	}
	if fired, _, err := e.st.FireDue(ctx, now); err != nil || fired != 0 {
		t.Fatalf("FireDue again: %d, %v", fired, err)
	}
}

func TestDirtyTenantsAndTimerWake(t *testing.T) {
	e := newEnv(t)
	if d := e.st.Dirty(); len(d) != 0 {
		t.Fatalf("dirty at start: %v", d)
	}
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
	e.customers(acme, person("c1"))
	if d := e.st.Dirty(); !slices.Equal(d, []string{acme}) {
		t.Fatalf("dirty after an event: %v", d)
	}
	if d := e.st.Dirty(); len(d) != 0 {
		t.Fatalf("Dirty did not clear: %v", d)
	}
	// Scheduling a timer wakes the timer loop.
	select {
	case <-e.st.TimerWake():
	default:
	}
	e.purchase(acme, "c1", "o1", 100, t0)
	select {
	case <-e.st.TimerWake():
	default:
		t.Fatal("a new timer did not signal TimerWake")
	}
	if _, err := e.st.Rescore(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateSettings(ctx, "globex", func(s *domain.Settings) error { s.Currency = "EUR"; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := e.st.UpdateSettings(ctx, "globex", func(s *domain.Settings) error { s.PlatinumShare = 2; return nil })
	wantErr(t, err, fault.ErrInvalid, "platinum_share")
	e.st.Dirty()
	// At start-up every tenant with settings is due a rescore.
	if err := e.st.MarkAllDirty(); err != nil {
		t.Fatal(err)
	}
	d := e.st.Dirty()
	slices.Sort(d)
	if !slices.Equal(d, []string{acme, "globex"}) {
		t.Fatalf("MarkAllDirty marked %v", d)
	}
}

// TestPendingSegmentsAreFinished: a create or a rule change whose full
// re-evaluation fails leaves the segment pending, its members not yet
// computed; a retry of the create finishes it, and ResumePending (run at
// start-up) finishes a rule change.
func TestPendingSegmentsAreFinished(t *testing.T) {
	e := newEnv(t)
	e.customers(acme, person("c1"), person("c2"))
	e.purchase(acme, "c1", "o1", 100, t0)
	e.drain()
	in := store.SegmentInput{ID: "buyers", Kind: dynamic, Rule: `features.purchases > 0`}
	e.st.FailBulkWrite()
	if _, _, err := e.st.CreateSegment(ctx, acme, in); err == nil {
		t.Fatal("create: want the failed pass's error")
	}
	if seg, err := e.st.GetSegment(ctx, acme, "buyers"); err != nil || seg.Pending != "segment created" || seg.Size != 0 {
		t.Fatalf("after the failed pass: %+v, %v; want the segment pending, empty", seg, err)
	}
	e.wantChanges()

	seg, created, err := e.st.CreateSegment(ctx, acme, in)
	if err != nil || created || seg.Pending != "" || seg.Size != 1 {
		t.Fatalf("the retry: %+v created %v, %v; want the stored segment, finished, one member", seg, created, err)
	}
	if got := e.members(acme, "buyers"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("members %v", got)
	}
	e.wantChanges(entered(acme, "buyers", "c1", "segment created"))

	e.st.FailBulkWrite()
	noBuyers := func(in *store.SegmentInput) error { in.Rule = `features.purchases == 0`; return nil }
	if _, err := e.st.UpdateSegment(ctx, acme, "buyers", "", noBuyers); err == nil {
		t.Fatal("update: want the failed pass's error")
	}
	if seg, err := e.st.GetSegment(ctx, acme, "buyers"); err != nil || seg.Pending != "rule changed" {
		t.Fatalf("after the failed pass: %+v, %v; want the segment pending", seg, err)
	}
	if err := e.st.ResumePending(ctx); err != nil {
		t.Fatal(err)
	}
	if seg, err := e.st.GetSegment(ctx, acme, "buyers"); err != nil || seg.Pending != "" || seg.Size != 1 {
		t.Fatalf("after ResumePending: %+v, %v; want it finished, one member", seg, err)
	}
	if got := e.members(acme, "buyers"); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("members %v", got)
	}
	e.wantChanges(left(acme, "buyers", "c1", "rule changed"), entered(acme, "buyers", "c2", "rule changed"))
}
