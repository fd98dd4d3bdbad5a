package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/grpcclient"
)

func dialSegmentation(t *testing.T, addr string) segmentationv1.SegmentationServiceClient {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return segmentationv1.NewSegmentationServiceClient(cc)
}

// restartSegments are the dynamic segments of the restart test: neither
// reads scores (recomputed on a timer, so not comparable between two
// processes) nor time (the clocks never move).
var restartSegments = []struct{ id, rule string }{
	{"big", `features.monetary >= 400000`},
	{"repeat", `features.purchases >= 3`},
}

const bigThreshold = 400_000

// restartWorkload is the deterministic stream of purchases and refunds, and
// the features it must leave per customer.
type restartWorkload struct {
	events    []*profilev1.Event
	purchases map[string]int64
	monetary  map[string]int64
}

func newRestartWorkload(customers, events int, base time.Time) *restartWorkload {
	w := &restartWorkload{purchases: map[string]int64{}, monetary: map[string]int64{}}
	rng := rand.New(rand.NewPCG(1, 2))
	type order struct {
		id, customer string
		left         int64
	}
	var orders []*order
	for i := range events {
		at := timestamppb.New(base.Add(time.Duration(i) * time.Minute))
		id := fmt.Sprintf("e-%05d", i)
		// One refund in four, of an order with something left: refunds
		// take customers back under the "big" threshold, so memberships
		// flip both ways during the stream.
		if i%4 == 3 {
			if k := slices.IndexFunc(orders, func(o *order) bool { return o.left > 0 }); k >= 0 {
				o := orders[k]
				amount := min(o.left, 20_000+rng.Int64N(60_000))
				o.left -= amount
				w.monetary[o.customer] -= amount
				w.events = append(w.events, &profilev1.Event{EventId: id, CustomerId: o.customer, OccurTime: at,
					Kind: &profilev1.Event_Refund{Refund: &profilev1.Refund{OrderId: o.id, Amount: &typev1.Money{AmountMinor: amount, Currency: "CNY"}}}})
				orders = slices.Delete(orders, k, k+1)
				if o.left > 0 {
					orders = append(orders, o)
				}
				continue
			}
		}
		customer := fmt.Sprintf("c%03d", rng.IntN(customers))
		amount := 10_000 + rng.Int64N(90_000)
		o := &order{id: "o-" + id, customer: customer, left: amount}
		orders = append(orders, o)
		w.purchases[customer]++
		w.monetary[customer] += amount
		w.events = append(w.events, purchase(id, customer, o.id, amount, at.AsTime()))
	}
	return w
}

// startSegmentation runs `rapport serve --target=segmentation` on dir against
// the profile service, on the same fake time as every other process.
func startSegmentation(t *testing.T, prof *proc, dir, fakeClock string) (*proc, segmentationv1.SegmentationServiceClient) {
	t.Helper()
	p := start(t, "--target=segmentation", "--profile-addr", prof.grpcAddr("profile"), "--access-addr", prof.grpcAddr("access"), "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0",
		"--data-dir", dir, "--fake-clock", fakeClock)
	return p, dialSegmentation(t, p.grpcAddr("segmentation"))
}

func createRestartSegments(t *testing.T, ctx context.Context, seg segmentationv1.SegmentationServiceClient) {
	t.Helper()
	for _, s := range restartSegments {
		// A retry after a restart returns the stored segment: CreateSegment is idempotent.
		if _, err := seg.CreateSegment(ctx, &segmentationv1.CreateSegmentRequest{Segment: &segmentationv1.Segment{
			SegmentId: s.id, DisplayName: s.id, Kind: segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC, Rule: s.rule}}); err != nil {
			t.Fatalf("create segment %s: %v", s.id, err)
		}
	}
}

// waitForSentinel waits until segmentation has applied the sentinel
// purchase, the last event of the profile feed: the feed is applied in
// order, so everything before it is applied too. The segmentation process
// is external and exposes no "caught up to sequence N" signal, so this
// polls GetCustomerScores, with a deadline.
func waitForSentinel(t *testing.T, ctx context.Context, seg segmentationv1.SegmentationServiceClient) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := seg.GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: "sentinel"})
		if err == nil && r.Features.GetPurchases() == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segmentation did not apply the sentinel purchase within 20s: %v, %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// membershipEvents reads a segmentation feed from the start, without
// waiting, and returns its membership changes in order.
func membershipEvents(t *testing.T, ctx context.Context, seg segmentationv1.SegmentationServiceClient) []*segmentationv1.MembershipChange {
	t.Helper()
	s, err := seg.FollowChanges(ctx, &segmentationv1.FollowChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*segmentationv1.MembershipChange
	var seq uint64
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Event.Sequence <= seq {
			t.Fatalf("feed sequence %d after %d", m.Event.Sequence, seq)
		}
		seq = m.Event.Sequence
		if m.Event.Type != "segment.entered" && m.Event.Type != "segment.left" {
			continue
		}
		mc := &segmentationv1.MembershipChange{}
		if err := m.Event.Payload.UnmarshalTo(mc); err != nil {
			t.Fatal(err)
		}
		out = append(out, mc)
	}
}

func segmentMembers(t *testing.T, ctx context.Context, seg segmentationv1.SegmentationServiceClient, id string) []string {
	t.Helper()
	r, err := seg.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{SegmentId: id, PageSize: 10000})
	if err != nil {
		t.Fatalf("members of %s: %v", id, err)
	}
	ids := []string{}
	for _, m := range r.Members {
		ids = append(ids, m.CustomerId)
	}
	g, err := seg.GetSegment(ctx, &segmentationv1.GetSegmentRequest{SegmentId: id})
	if err != nil {
		t.Fatal(err)
	}
	if g.Segment.Size != int64(len(ids)) {
		t.Errorf("segment %s: size %d, but %d members", id, g.Segment.Size, len(ids))
	}
	return ids
}

// TestSegmentationRestartSafety kills the segmentation process with SIGKILL
// while it follows a stream of purchases and refunds, restarts it on the
// same data, and checks that it ends exactly where a process that computed
// everything from scratch ends: the same features and memberships for every
// customer, and a change feed in which no membership change was lost or
// emitted twice across the kill.
func TestSegmentationRestartSafety(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	// Every process starts its own fake clock at the same instant and none is
	// ever moved, so clock-relative features (tenure, windows) agree.
	fakeClock := now.Format(time.RFC3339)
	prof := start(t, "--target=profile", "--data-dir", t.TempDir(), "--profile-addr", "127.0.0.1:0", "--fake-clock", fakeClock)
	profileAddr := prof.grpcAddr("profile")
	profiles := dial(t, profileAddr)
	ctx := prof.ctx("acme")

	d1 := t.TempDir()
	seg1, seg := startSegmentation(t, prof, d1, fakeClock)
	createRestartSegments(t, ctx, seg)

	const customers, events = 100, 2000
	ids := []string{"sentinel"}
	var cs []*profilev1.Customer
	for i := range customers {
		ids = append(ids, fmt.Sprintf("c%03d", i))
	}
	for _, id := range ids {
		cs = append(cs, &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: id})
	}
	if _, err := profiles.BatchCreateCustomers(ctx, &profilev1.BatchCreateCustomersRequest{Customers: cs}); err != nil {
		t.Fatal(err)
	}
	work := newRestartWorkload(customers, events, now.Add(-30*24*time.Hour))

	// The writer streams the workload. It holds at three quarters until the
	// kill, so the kill always lands mid-stream, and writes the rest while
	// segmentation is down and catching up.
	killed := make(chan struct{})
	release := sync.OnceFunc(func() { close(killed) })
	t.Cleanup(release) // a test that fails before the kill does not leave the writer waiting
	written := make(chan error, 1)
	var progress atomic.Int64
	go func() {
		for i, ev := range work.events {
			if i == events*3/4 {
				<-killed
			}
			if _, err := profiles.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: ev}); err != nil {
				written <- fmt.Errorf("event %d: %w", i, err)
				return
			}
			progress.Add(1)
		}
		written <- nil
	}()

	// Kill once segmentation's own feed shows it deciding memberships.
	watchCtx, stopWatch := context.WithTimeout(ctx, 30*time.Second)
	stream, err := seg.FollowChanges(watchCtx, &segmentationv1.FollowChangesRequest{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	for seen := 0; seen < 50; {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("segmentation feed after %d membership events: %v", seen, err)
		}
		if m.Event.Type == "segment.entered" || m.Event.Type == "segment.left" {
			seen++
		}
	}
	stopWatch()
	seg1.kill()
	t.Logf("segmentation killed after %d of %d events were written", progress.Load(), events)
	release()

	_, seg = startSegmentation(t, prof, d1, fakeClock)
	if err := <-written; err != nil {
		t.Fatalf("writing the workload: %v", err)
	}
	if _, err := profiles.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e-sentinel", "sentinel", "o-sentinel", 1, now)}); err != nil {
		t.Fatal(err)
	}
	work.purchases["sentinel"], work.monetary["sentinel"] = 1, 1
	waitForSentinel(t, ctx, seg)

	// A second process on a fresh data dir recomputes everything from the
	// profile feed.
	_, fresh := startSegmentation(t, prof, t.TempDir(), fakeClock)
	createRestartSegments(t, ctx, fresh)
	waitForSentinel(t, ctx, fresh)

	for _, id := range ids {
		a, err := seg.GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: id})
		if err != nil {
			t.Fatal(err)
		}
		b, err := fresh.GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a.Features, b.Features) {
			t.Errorf("%s: features after the restart\n %v\nfrom scratch\n %v", id, a.Features, b.Features)
		}
		// Both agree with what was written.
		if a.Features.GetPurchases() != work.purchases[id] || a.Features.GetMonetary() != work.monetary[id] {
			t.Errorf("%s: %d purchases, monetary %d; the workload wrote %d, %d", id,
				a.Features.GetPurchases(), a.Features.GetMonetary(), work.purchases[id], work.monetary[id])
		}
	}
	current := map[string]map[string]bool{}
	for _, s := range restartSegments {
		a, b := segmentMembers(t, ctx, seg, s.id), segmentMembers(t, ctx, fresh, s.id)
		if !slices.Equal(a, b) {
			t.Errorf("segment %s: members after the restart %v, from scratch %v", s.id, a, b)
		}
		var want []string
		for _, id := range ids {
			if (s.id == "big" && work.monetary[id] >= bigThreshold) || (s.id == "repeat" && work.purchases[id] >= 3) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		if !slices.Equal(a, want) {
			t.Errorf("segment %s: members %v, the workload makes %v", s.id, a, want)
		}
		current[s.id] = map[string]bool{}
		for _, id := range a {
			current[s.id][id] = true
		}
	}

	// The restarted process's feed: per segment and customer, entered and
	// left strictly alternate from entered, and end in today's membership.
	type pair struct{ segment, customer string }
	in := map[pair]bool{}
	flips, left := 0, 0
	for _, mc := range membershipEvents(t, ctx, seg) {
		k := pair{mc.SegmentId, mc.CustomerId}
		if mc.Entered == in[k] {
			t.Fatalf("%s/%s: entered=%v twice in a row (%s): a change was lost or repeated", k.segment, k.customer, mc.Entered, mc.Reason)
		}
		in[k] = mc.Entered
		flips++
		if !mc.Entered {
			left++
		}
	}
	for k, member := range in {
		if member != current[k.segment][k.customer] {
			t.Errorf("%s/%s: the feed ends with member=%v, the segment says %v", k.segment, k.customer, member, current[k.segment][k.customer])
		}
	}
	for segment, ms := range current {
		for customer := range ms {
			if !in[pair{segment, customer}] {
				t.Errorf("%s/%s: a member the feed never announced", segment, customer)
			}
		}
	}
	if left == 0 {
		t.Errorf("no customer ever left a segment: the workload does not exercise leaving")
	}
	t.Logf("%d membership changes on the restarted process's feed, %d of them leaving", flips, left)
}
