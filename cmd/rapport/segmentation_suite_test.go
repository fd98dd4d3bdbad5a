package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/grpcclient"
)

// watchFeed follows tenant's segmentation change feed over gRPC and passes
// on the payloads of type T, so a test waits on the event itself instead of
// polling or sleeping.
func watchFeed[T any, PT interface {
	*T
	proto.Message
}](t *testing.T, addr string, ctx context.Context) <-chan PT {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := segmentationv1.NewSegmentationServiceClient(cc).FollowChanges(ctx, &segmentationv1.FollowChangesRequest{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan PT, 4096)
	go func() {
		defer close(out)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			var v PT = new(T)
			if m.Event.Payload.UnmarshalTo(v) == nil {
				out <- v
			}
		}
	}()
	return out
}

// watchSegments follows tenant acme's membership changes.
func watchSegments(t *testing.T, p *proc) <-chan *segmentationv1.MembershipChange {
	return watchFeed[segmentationv1.MembershipChange](t, p.grpcAddr("segmentation"), p.ctx("acme"))
}

func expectChange(t *testing.T, ch <-chan *segmentationv1.MembershipChange, segment, customer string, entered bool) *segmentationv1.MembershipChange {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case mc, ok := <-ch:
			if !ok {
				t.Fatal("segmentation feed closed")
			}
			if mc.SegmentId == segment && mc.CustomerId == customer {
				if mc.Entered != entered {
					t.Fatalf("%s %s: entered=%v, want %v (%s)", segment, customer, mc.Entered, entered, mc.Reason)
				}
				return mc
			}
		case <-timeout:
			t.Fatalf("no change of %s for %s (entered=%v) on the feed", segment, customer, entered)
		}
	}
}

func members(t *testing.T, api rest, segment string) []string {
	t.Helper()
	out := api.must("GET", "/v1/segments/"+segment+"/members", nil, 200)
	var ids []string
	ms, _ := out["members"].([]any)
	for _, m := range ms {
		ids = append(ids, m.(map[string]any)["customerId"].(string))
	}
	return ids
}

// TestSuiteSegmentation records purchases through the gateway and watches a
// dynamic segment's membership change, then moves the suite's fake clock
// past a date-relative threshold and watches the rule flip by itself, with
// no rebuild call.
func TestSuiteSegmentation(t *testing.T) {
	start0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--fake-clock", start0.Format(time.RFC3339),
		"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	api := p.rest("acme")
	changes := watchSegments(t, p)

	api.must("POST", "/v1/segments", map[string]any{"segmentId": "zj-big", "displayName": "Big spenders in Zhejiang",
		"kind": "SEGMENT_KIND_DYNAMIC", "rule": `customer.region.province == "浙江" && features.monetary_365d > 500000`}, 200)
	api.must("POST", "/v1/segments", map[string]any{"segmentId": "lapsed", "displayName": "No purchase for 90 days",
		"kind": "SEGMENT_KIND_DYNAMIC", "rule": `features.purchases > 0 && days_since(features.last_purchase) > 90`}, 200)
	// A bad rule is refused with its position.
	bad := api.must("POST", "/v1/segments", map[string]any{"segmentId": "bad", "displayName": "bad",
		"kind": "SEGMENT_KIND_DYNAMIC", "rule": `features.nosuch > 1`}, 400)
	if !strings.Contains(fmt.Sprint(bad), "segment.rule") {
		t.Fatalf("bad rule error does not name segment.rule: %v", bad)
	}

	api.must("POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"region": map[string]any{"country": "CN", "province": "浙江", "city": "杭州"}}, 200)
	bought := start0.Add(-time.Hour)
	for i, amount := range []string{"300000", "250000"} {
		api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": fmt.Sprintf("p-%d", i),
			"occurTime": bought.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
			"purchase":  map[string]any{"orderId": fmt.Sprintf("o-%d", i), "amount": map[string]any{"amountMinor": amount, "currency": "CNY"}}}, 200)
	}
	// 550000 in the last 365 days: the customer enters zj-big.
	expectChange(t, changes, "zj-big", "c-1", true)
	if got := members(t, api, "zj-big"); fmt.Sprint(got) != "[c-1]" {
		t.Fatalf("zj-big members %v", got)
	}
	if got := members(t, api, "lapsed"); len(got) != 0 {
		t.Fatalf("lapsed members %v before the threshold", got)
	}
	// A refund takes it back under the threshold: the customer leaves.
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "r-1", "occurTime": start0.Format(time.RFC3339),
		"refund": map[string]any{"orderId": "o-1", "amount": map[string]any{"amountMinor": "100000", "currency": "CNY"}}}, 200)
	expectChange(t, changes, "zj-big", "c-1", false)

	// Explain says why, with the values used.
	ex := api.must("GET", "/v1/segments/lapsed/members/c-1:explain", nil, 200)
	if ex["member"] == true || ex["nextEvaluateTime"] == nil {
		t.Fatalf("explain before the threshold: %v", ex)
	}
	// The last purchase was at bought+1m: the rule flips 91 days later.
	flip := bought.Add(time.Minute).Add(91 * 24 * time.Hour)
	if got := ex["nextEvaluateTime"].(string); got != flip.Format(time.RFC3339) {
		t.Fatalf("next evaluation %s, want %s", got, flip.Format(time.RFC3339))
	}
	// One second before: nothing. At the threshold: the timer fires.
	api.must("POST", "/v1/testing/clock", map[string]any{"time": flip.Add(-time.Second).Format(time.RFC3339)}, 200)
	api.must("POST", "/v1/testing/clock", map[string]any{"time": flip.Add(time.Second).Format(time.RFC3339)}, 200)
	mc := expectChange(t, changes, "lapsed", "c-1", true)
	if mc.Reason != "time" {
		t.Fatalf("lapsed entered for %q, want the timer", mc.Reason)
	}
	if got := members(t, api, "lapsed"); fmt.Sprint(got) != "[c-1]" {
		t.Fatalf("lapsed members %v after the threshold", got)
	}
	ex = api.must("GET", "/v1/segments/lapsed/members/c-1:explain", nil, 200)
	if ex["member"] != true || !strings.Contains(fmt.Sprint(ex["clauses"]), "days_since(features.last_purchase)") {
		t.Fatalf("explain after the threshold: %v", ex)
	}
	// Buying again brings the customer back.
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "p-9", "occurTime": flip.Add(time.Second).Format(time.RFC3339),
		"purchase": map[string]any{"orderId": "o-9", "amount": map[string]any{"amountMinor": "100", "currency": "CNY"}}}, 200)
	expectChange(t, changes, "lapsed", "c-1", false)
}
