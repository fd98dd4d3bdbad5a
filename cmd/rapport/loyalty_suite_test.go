package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
)

// watchPoints follows tenant's loyalty feed and passes on its ledger entries.
func watchPoints(t *testing.T, addr string, ctx context.Context) <-chan *loyaltyv1.Entry {
	t.Helper()
	client := dialLoyalty(t, addr)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := client.FollowChanges(ctx, &loyaltyv1.FollowChangesRequest{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *loyaltyv1.Entry, 100)
	go func() {
		defer close(out)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			e := &loyaltyv1.Entry{}
			if m.Event.Type == "points.changed" && m.Event.Payload.UnmarshalTo(e) == nil {
				out <- e
			}
		}
	}()
	return out
}

func nextEntry(t *testing.T, ch <-chan *loyaltyv1.Entry) *loyaltyv1.Entry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("loyalty feed closed")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no points.changed on the loyalty feed")
	}
	return nil
}

// TestSuiteLoyalty drives the loyalty service through the gateway as an app
// would: a purchase recorded in the profile earns pending points by the
// programme's rules; a refund reverses them; bad input — an unknown member,
// negative points, redeeming more than the balance, a coupon used twice, an
// expired coupon — gets a clear error and changes nothing; reconciliation
// stays clean.
func TestSuiteLoyalty(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--fake-clock", t0.Format(time.RFC3339),
		"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	api := p.rest("acme")
	points := watchPoints(t, p.grpcAddr("loyalty"), p.ctx("acme"))

	api.must("POST", "/v1/loyalty/programs", map[string]any{"programId": "club", "displayName": "Tea Club", "pointsName": "积分",
		"currency": "CNY", "pointsPerUnit": 1, "firstPurchaseBonus": 50, "returnWindowDays": 7,
		"expiry": "EXPIRY_POLICY_AFTER_MONTHS", "expiryMonths": 12, "pointValue": map[string]any{"amountMinor": "1", "currency": "CNY"},
		"tiers": []any{map[string]any{"tierId": "member"}, map[string]any{"tierId": "gold", "threshold": "1000", "multiplier": 2}}}, 200)
	api.must("POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"timeZone": "Asia/Shanghai"}, 200)
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "pos-1", "occurTime": t0.Format(time.RFC3339),
		"purchase": map[string]any{"orderId": "SO-1", "amount": map[string]any{"amountMinor": "25900", "currency": "CNY"}}}, 200)

	// 259 CNY at 1 point per yuan, plus the first-purchase bonus, pending for the return window.
	e := nextEntry(t, points)
	if e.CustomerId != "c-1" || e.Points != 309 || e.OrderId != "SO-1" || e.IdempotencyKey != "profile:pos-1" {
		t.Fatalf("earn from the purchase: %v", e)
	}
	m := api.must("GET", "/v1/loyalty/programs/club/members/c-1", nil, 200)["member"].(map[string]any)
	if m["pending"] != "309" || m["balance"] != nil || m["tierId"] != "member" || m["timeZone"] != "Asia/Shanghai" {
		t.Fatalf("member after the purchase: %v", m)
	}
	// A week later the points are available.
	api.must("POST", "/v1/testing/clock", map[string]any{"time": t0.AddDate(0, 0, 8).Format(time.RFC3339)}, 200)
	m = api.must("GET", "/v1/loyalty/programs/club/members/c-1", nil, 200)["member"].(map[string]any)
	if m["balance"] != "309" || m["pending"] != nil {
		t.Fatalf("member after the return window: %v", m)
	}

	entries := func() int {
		out := api.must("GET", "/v1/loyalty/programs/club/members/c-1/entries", nil, 200)
		es, _ := out["entries"].([]any)
		return len(es)
	}
	before := entries()
	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
		field, message     string
	}{
		{"unknown member", "GET", "/v1/loyalty/programs/club/members/nobody", nil, 404, "", "not found"},
		{"earn for an unknown member", "POST", "/v1/loyalty/programs/club/members/nobody:earn",
			map[string]any{"idempotencyKey": "k1", "points": "10"}, 404, "", "not found"},
		{"negative points", "POST", "/v1/loyalty/programs/club/members/c-1:earn",
			map[string]any{"idempotencyKey": "k2", "points": "-10"}, 400, "points", ""},
		{"redeeming more than the balance", "POST", "/v1/loyalty/programs/club/members/c-1:redeem",
			map[string]any{"idempotencyKey": "k3", "points": "310"}, 400, "", "309 available, 310 asked"},
		{"an adjustment without a reason", "POST", "/v1/loyalty/programs/club/members/c-1:adjust",
			map[string]any{"idempotencyKey": "k4", "points": "10", "actor": "li.na"}, 400, "reason", ""},
	} {
		code, out := api.do(c.method, c.path, c.body)
		msg := fmt.Sprint(out)
		if code != c.code || (c.field != "" && !slices.Contains(violatedFields(out), c.field)) || !strings.Contains(msg, c.message) {
			t.Errorf("%s: %d %v; want %d naming %q / %q", c.name, code, out, c.code, c.field, c.message)
		}
	}
	if n := entries(); n != before {
		t.Fatalf("refused calls changed the ledger: %d entries, %d before", n, before)
	}

	// A partial refund reverses its share of what the purchase earned.
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "rf-1", "occurTime": t0.AddDate(0, 0, 8).Format(time.RFC3339),
		"refund": map[string]any{"orderId": "SO-1", "amount": map[string]any{"amountMinor": "12950", "currency": "CNY"}}}, 200)
	if e := nextEntry(t, points); e.Kind != loyaltyv1.EntryKind_ENTRY_KIND_REVERSE || e.Points != -154 {
		t.Fatalf("reverse of half the order: %v (want floor(309/2) = 154 back)", e)
	}

	// A coupon works once, and not after it expires.
	api.must("POST", "/v1/loyalty/programs/club/coupons:issue", map[string]any{"campaignId": "spring", "customerIds": []string{"c-1"},
		"description": "10% off", "expireTime": t0.AddDate(0, 1, 0).Format(time.RFC3339)}, 200)
	issued := api.must("POST", "/v1/loyalty/programs/club/coupons:issue", map[string]any{"campaignId": "autumn", "customerIds": []string{"c-1"},
		"description": "free tea", "expireTime": t0.AddDate(0, 0, 20).Format(time.RFC3339)}, 200)
	spring := api.must("POST", "/v1/loyalty/programs/club/coupons:issue", map[string]any{"campaignId": "spring", "customerIds": []string{"c-1"},
		"description": "10% off", "expireTime": t0.AddDate(0, 1, 0).Format(time.RFC3339)}, 200)
	code1 := spring["coupons"].([]any)[0].(map[string]any)["code"].(string)
	code2 := issued["coupons"].([]any)[0].(map[string]any)["code"].(string)
	api.must("POST", "/v1/loyalty/programs/club/coupons/"+code1+":use", map[string]any{"customerId": "c-1", "orderId": "SO-2"}, 200)
	if code, out := api.do("POST", "/v1/loyalty/programs/club/coupons/"+code1+":use", map[string]any{"customerId": "c-1", "orderId": "SO-3"}); code != 400 ||
		!strings.Contains(fmt.Sprint(out), "already used") {
		t.Errorf("a coupon used twice: %d %v", code, out)
	}
	api.must("POST", "/v1/testing/clock", map[string]any{"time": t0.AddDate(0, 0, 21).Format(time.RFC3339)}, 200)
	if code, out := api.do("POST", "/v1/loyalty/programs/club/coupons/"+code2+":use", map[string]any{"customerId": "c-1"}); code != 400 ||
		!strings.Contains(fmt.Sprint(out), "expired") {
		t.Errorf("an expired coupon: %d %v", code, out)
	}
	if got := api.must("GET", "/v1/loyalty/programs/club/coupons/"+code2, nil, 200)["coupon"].(map[string]any); got["state"] != "COUPON_STATE_EXPIRED" {
		t.Errorf("the expired coupon reads %v", got)
	}

	rec := api.must("POST", "/v1/loyalty/programs/club:reconcile", map[string]any{}, 200)
	if rec["differences"] != nil || rec["members"] != "1" {
		t.Fatalf("reconciliation: %v", rec)
	}
}

// violatedFields lists the fields of a gateway error's fieldViolations.
func violatedFields(out map[string]any) []string {
	e, _ := out["error"].(map[string]any)
	vs, _ := e["fieldViolations"].([]any)
	var fields []string
	for _, v := range vs {
		if f, ok := v.(map[string]any)["field"].(string); ok {
			fields = append(fields, f)
		}
	}
	return fields
}
