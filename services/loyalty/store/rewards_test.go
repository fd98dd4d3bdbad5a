package store_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

// snapshotDB is every key and value of every top-level bucket, to prove
// that a refused call changed nothing.
func snapshotDB(t testing.TB, db *boltdb.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[string(name)+"|"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unchanged fails the test when the database differs from before.
func unchanged(t testing.TB, db *boltdb.DB, before map[string]string, what string) {
	t.Helper()
	after := snapshotDB(t, db)
	if !maps.Equal(before, after) {
		var diff []string
		for k, v := range after {
			if before[k] != v {
				diff = append(diff, k)
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				diff = append(diff, k)
			}
		}
		t.Fatalf("%s changed the database: %q", what, diff)
	}
}

func wantErr(t testing.TB, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// rewardEnv is a programme "club" with members who hold points.
func rewardEnv(t testing.TB, members map[string]int64) *env {
	t.Helper()
	e := newEnv(t)
	e.program(domain.Program{})
	for _, c := range slices.Sorted(maps.Keys(members)) {
		e.enroll("club", c, "", 0)
		if pts := members[c]; pts > 0 {
			e.record("club", c, store.Op{Kind: domain.KindEarn, Key: "seed", Points: pts})
		}
	}
	return e
}

func (e *env) reward(r store.Reward) *store.Reward {
	e.t.Helper()
	out, created, err := e.st.CreateReward(ctx, tenant, "club", r)
	if err != nil || !created {
		e.t.Fatalf("create reward %s: created %t, %v", r.ID, created, err)
	}
	return out
}

func (e *env) rewardStock(id string) int64 {
	e.t.Helper()
	rs, err := e.st.ListRewards(ctx, tenant, "club")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == id {
			return r.Stock
		}
	}
	e.t.Fatalf("reward %s not listed", id)
	return 0
}

func TestCreateRewardValidates(t *testing.T) {
	e := rewardEnv(t, nil)
	good := store.Reward{ID: "mug", Name: "Mug", Points: 500, Stock: 10}
	for _, tc := range []struct {
		name  string
		edit  func(*store.Reward)
		field string
	}{
		{"no id", func(r *store.Reward) { r.ID = "" }, "reward_id"},
		{"bad id", func(r *store.Reward) { r.ID = "a mug" }, "reward_id"},
		{"no name", func(r *store.Reward) { r.Name = "  " }, "display_name"},
		{"zero points", func(r *store.Reward) { r.Points = 0 }, "points"},
		{"negative points", func(r *store.Reward) { r.Points = -5 }, "points"},
		{"negative stock", func(r *store.Reward) { r.Stock = -1 }, "stock"},
		{"negative validity", func(r *store.Reward) { r.CouponValidDays = -1 }, "coupon_valid_days"},
		{"validity over ten years", func(r *store.Reward) { r.CouponValidDays = store.MaxCouponValidDays + 1 }, "coupon_valid_days"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			_, _, err := e.st.CreateReward(ctx, tenant, "club", r)
			var inv *fault.Invalid
			if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != tc.field {
				t.Fatalf("error %v, want one violation of %s", err, tc.field)
			}
		})
	}
	rs, err := e.st.ListRewards(ctx, tenant, "club")
	if err != nil || len(rs) != 0 {
		t.Fatalf("after refused creates: %d rewards, %v", len(rs), err)
	}
	_, _, err = e.st.CreateReward(ctx, tenant, "nope", good)
	wantErr(t, err, fault.ErrNotFound, "reward of an unknown programme")
	_, err = e.st.ListRewards(ctx, tenant, "nope")
	wantErr(t, err, fault.ErrNotFound, "rewards of an unknown programme")
	// Stock 0 and the extremes of the validity are fine.
	e.reward(store.Reward{ID: "sold-out", Name: "Gone", Points: 1, Stock: 0, CouponValidDays: store.MaxCouponValidDays})
}

func TestCreateRewardRetries(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"c1": 1000})
	first := e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 5, CouponValidDays: 7})
	e.reward(store.Reward{ID: "bag", Name: "Bag", Points: 300, Stock: 1})

	again, created, err := e.st.CreateReward(ctx, tenant, "club", store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 5, CouponValidDays: 7})
	if err != nil || created || *again != *first {
		t.Fatalf("retry: %+v created %t, %v; want %+v, false", again, created, err, first)
	}
	before := snapshotDB(t, e.db)
	for _, other := range []store.Reward{
		{ID: "mug", Name: "Big mug", Points: 100, Stock: 5, CouponValidDays: 7},
		{ID: "mug", Name: "Mug", Points: 101, Stock: 5, CouponValidDays: 7},
		{ID: "mug", Name: "Mug", Points: 100, Stock: 6, CouponValidDays: 7},
		{ID: "mug", Name: "Mug", Points: 100, Stock: 5},
	} {
		_, _, err := e.st.CreateReward(ctx, tenant, "club", other)
		wantErr(t, err, fault.ErrAlreadyExists, fmt.Sprintf("create %v over the mug", other))
	}
	unchanged(t, e.db, before, "refused creates")

	// A retry after a redemption is still a retry: it is compared with the
	// stock the reward was created with, and returns the stock left.
	if _, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "r1"); err != nil {
		t.Fatal(err)
	}
	again, created, err = e.st.CreateReward(ctx, tenant, "club", store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 5, CouponValidDays: 7})
	if err != nil || created || again.Stock != 4 {
		t.Fatalf("retry after a redemption: %+v created %t, %v", again, created, err)
	}

	rs, err := e.st.ListRewards(ctx, tenant, "club")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, fmt.Sprintf("%s:%d", r.ID, r.Stock))
	}
	if want := []string{"bag:1", "mug:4"}; !slices.Equal(ids, want) {
		t.Fatalf("listed %v, want %v", ids, want)
	}
}

func TestRedeemRewardTakesPointsStockAndIssuesCoupon(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	// New York moves to summer time on 8 March 2026: seven local days
	// from 2 March 05:00 EST end on 9 March 05:00 EDT, 7 days less an hour.
	e.enroll("club", "c1", "America/New_York", 0)
	e.record("club", "c1", store.Op{Kind: domain.KindEarn, Key: "seed", Points: 1000})
	e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 300, Stock: 2, CouponValidDays: 7})
	e.reward(store.Reward{ID: "pen", Name: "Pen", Points: 50, Stock: 1})

	res, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "redeem-1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || res.Entry.Kind != domain.KindRedeem || res.Entry.Points != -300 || res.Entry.Reason != "reward mug" || res.Entry.Key != "redeem-1" {
		t.Fatalf("entry %+v, replayed %t", res.Entry, res.Replayed)
	}
	if res.View.Balance != 700 || res.Reward.Stock != 1 || e.rewardStock("mug") != 1 {
		t.Fatalf("balance %d, stock %d (stored %d); want 700, 1", res.View.Balance, res.Reward.Stock, e.rewardStock("mug"))
	}
	c := res.Coupon
	if c.Customer != "c1" || c.Campaign != "mug" || !c.Reward || c.Description != "Mug" || c.State != store.CouponIssued ||
		!c.Issued.Equal(t0) || !c.Expires.Equal(t0.Add(7*day-time.Hour)) {
		t.Fatalf("coupon %+v", c)
	}
	if len(c.Code) < 12 || !ident.Valid(c.Code) {
		t.Fatalf("code %q is not 12+ id-safe characters", c.Code)
	}
	got, err := e.st.GetCoupon(ctx, tenant, "club", c.Code)
	if err != nil || *got != *c {
		t.Fatalf("GetCoupon: %+v, %v; want %+v", got, err, c)
	}

	// Zero validity means 30 days.
	res, err = e.st.RedeemReward(ctx, tenant, "club", "pen", "c1", "redeem-2")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(30*day - time.Hour); !res.Coupon.Expires.Equal(want) {
		t.Fatalf("default expiry %s, want %s", res.Coupon.Expires, want)
	}
	if res.Coupon.Code == c.Code {
		t.Fatal("two redemptions share a code")
	}
	e.reconcile("club")
}

func TestRedeemRewardConcurrentStock(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"c0": 1000, "c1": 1000, "c2": 1000})
	e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 3})

	const calls = 12
	var wg sync.WaitGroup
	errs := make([]error, calls)
	coupons := make([]*store.Coupon, calls)
	for i := range calls {
		wg.Go(func() {
			res, err := e.st.RedeemReward(ctx, tenant, "club", "mug", fmt.Sprintf("c%d", i%3), fmt.Sprintf("k%d", i))
			errs[i] = err
			if err == nil {
				coupons[i] = res.Coupon
			}
		})
	}
	wg.Wait()
	codes := map[string]bool{}
	spent := map[string]int64{}
	for i, err := range errs {
		switch {
		case err == nil:
			codes[coupons[i].Code] = true
			spent[coupons[i].Customer] += 100
		case errors.Is(err, fault.ErrFailedPrecondition):
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if len(codes) != 3 {
		t.Fatalf("%d redemptions succeeded with distinct coupons, want 3 (errors %v)", len(codes), errs)
	}
	if s := e.rewardStock("mug"); s != 0 {
		t.Fatalf("stock %d, want 0", s)
	}
	for _, c := range []string{"c0", "c1", "c2"} {
		if b := e.member("club", c).Balance; b != 1000-spent[c] {
			t.Fatalf("%s balance %d, want %d", c, b, 1000-spent[c])
		}
	}
	e.reconcile("club")

	// Out of stock: nothing changes.
	before := snapshotDB(t, e.db)
	_, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c0", "late")
	wantErr(t, err, fault.ErrFailedPrecondition, "redeem out of stock")
	unchanged(t, e.db, before, "an out-of-stock redemption")
}

func TestRedeemRewardRetry(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"c1": 1000, "c2": 1000})
	e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 1})
	e.reward(store.Reward{ID: "pen", Name: "Pen", Points: 100, Stock: 5})

	first, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "k1")
	if err != nil {
		t.Fatal(err)
	}
	// The retry comes after the last unit went, and after the clock moved:
	// it is still answered with the first redemption, and changes nothing.
	e.clk.Advance(time.Hour)
	before := snapshotDB(t, e.db)
	again, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "k1")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !again.Replayed || again.Entry.Seq != first.Entry.Seq || *again.Coupon != *first.Coupon || again.Reward.Stock != 0 {
		t.Fatalf("retry: replayed %t, entry %d (first %d), coupon %+v (first %+v), stock %d",
			again.Replayed, again.Entry.Seq, first.Entry.Seq, again.Coupon, first.Coupon, again.Reward.Stock)
	}
	unchanged(t, e.db, before, "a retried redemption")
	if b := e.member("club", "c1").Balance; b != 900 {
		t.Fatalf("balance %d after a retry, want 900", b)
	}

	// The key for another reward is another request.
	_, err = e.st.RedeemReward(ctx, tenant, "club", "pen", "c1", "k1")
	wantErr(t, err, fault.ErrAlreadyExists, "the key for another reward")
	unchanged(t, e.db, before, "the key for another reward")
	// A key spent by a plain Redeem that looks the same has no coupon.
	e.record("club", "c2", store.Op{Kind: domain.KindRedeem, Key: "plain", Points: 100, Reason: "reward pen"})
	before = snapshotDB(t, e.db)
	_, err = e.st.RedeemReward(ctx, tenant, "club", "pen", "c2", "plain")
	wantErr(t, err, fault.ErrAlreadyExists, "a key spent by a plain redeem")
	unchanged(t, e.db, before, "a key spent by a plain redeem")

	// The retry survives a restart: the code comes from the stored secret.
	e.reopen()
	again, err = e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "k1")
	if err != nil || again.Coupon.Code != first.Coupon.Code {
		t.Fatalf("retry after a restart: %+v, %v; want code %s", again, err, first.Coupon.Code)
	}
	e.reconcile("club")
}

func TestRedeemRewardRefusals(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"rich": 1000, "poor": 99})
	e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 2})
	if _, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "rich", "warm-up"); err != nil {
		t.Fatal(err)
	}
	before := snapshotDB(t, e.db)
	for _, tc := range []struct {
		name, program, reward, customer string
		want                            error
	}{
		{"too few points", "club", "mug", "poor", fault.ErrFailedPrecondition},
		{"not a member", "club", "mug", "stranger", fault.ErrNotFound},
		{"unknown reward", "club", "cup", "rich", fault.ErrNotFound},
		{"unknown programme", "nope", "mug", "rich", fault.ErrNotFound},
	} {
		_, err := e.st.RedeemReward(ctx, tenant, tc.program, tc.reward, tc.customer, "k-"+tc.customer)
		wantErr(t, err, tc.want, tc.name)
	}
	unchanged(t, e.db, before, "refused redemptions")
	if s := e.rewardStock("mug"); s != 1 {
		t.Fatalf("stock %d, want 1", s)
	}
	// The refused key is free: with points, the same key redeems.
	e.record("club", "poor", store.Op{Kind: domain.KindEarn, Key: "top-up", Points: 1})
	if _, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "poor", "k-poor"); err != nil {
		t.Fatalf("after a top-up: %v", err)
	}
	e.reconcile("club")
}

func TestUseCoupon(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"c1": 1000, "c2": 1000})
	e.reward(store.Reward{ID: "mug", Name: "Mug", Points: 100, Stock: 5, CouponValidDays: 10})
	res1, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "k1")
	if err != nil {
		t.Fatal(err)
	}
	res2, err := e.st.RedeemReward(ctx, tenant, "club", "mug", "c1", "k2")
	if err != nil {
		t.Fatal(err)
	}
	code, later := res1.Coupon.Code, res2.Coupon.Code

	before := snapshotDB(t, e.db)
	_, err = e.st.UseCoupon(ctx, tenant, "club", code, "c2", "o1")
	wantErr(t, err, fault.ErrFailedPrecondition, "another member's coupon")
	_, err = e.st.UseCoupon(ctx, tenant, "club", "AAAAAAAAAAAAAAAA", "c1", "o1")
	wantErr(t, err, fault.ErrNotFound, "an unknown code")
	_, err = e.st.GetCoupon(ctx, tenant, "club", "AAAAAAAAAAAAAAAA")
	wantErr(t, err, fault.ErrNotFound, "get an unknown code")
	_, err = e.st.UseCoupon(ctx, tenant, "other", code, "c1", "o1")
	wantErr(t, err, fault.ErrNotFound, "the code in another programme")
	unchanged(t, e.db, before, "refused uses")

	e.clk.Advance(time.Hour)
	used, err := e.st.UseCoupon(ctx, tenant, "club", code, "c1", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if used.State != store.CouponUsed || !used.Used.Equal(t0.Add(time.Hour)) || used.Order != "o1" {
		t.Fatalf("used coupon %+v", used)
	}
	// A retry of that use returns it; a second use fails.
	e.clk.Advance(time.Hour)
	before = snapshotDB(t, e.db)
	again, err := e.st.UseCoupon(ctx, tenant, "club", code, "c1", "o1")
	if err != nil || *again != *used {
		t.Fatalf("retried use: %+v, %v; want %+v", again, err, used)
	}
	for _, order := range []string{"o2", ""} {
		_, err = e.st.UseCoupon(ctx, tenant, "club", code, "c1", order)
		wantErr(t, err, fault.ErrFailedPrecondition, "a second use with order "+order)
	}
	unchanged(t, e.db, before, "a second use")

	// At its expiry the other coupon is expired and cannot be used.
	e.clk.Set(res2.Coupon.Expires)
	got, err := e.st.GetCoupon(ctx, tenant, "club", later)
	if err != nil || got.State != store.CouponExpired {
		t.Fatalf("at expiry: %+v, %v", got, err)
	}
	before = snapshotDB(t, e.db)
	_, err = e.st.UseCoupon(ctx, tenant, "club", later, "c1", "o3")
	wantErr(t, err, fault.ErrFailedPrecondition, "an expired coupon")
	unchanged(t, e.db, before, "using an expired coupon")
	// A used coupon stays used after its expiry.
	if got, err := e.st.GetCoupon(ctx, tenant, "club", code); err != nil || got.State != store.CouponUsed {
		t.Fatalf("used coupon after expiry: %+v, %v", got, err)
	}
}

func TestIssueCoupons(t *testing.T) {
	e := rewardEnv(t, map[string]int64{"m1": 0, "m2": 0})
	exp := t0.Add(14 * day)
	issue := store.Issue{Campaign: "spring", Customers: []string{"m1", "x", "m2", "m1"}, Description: "10% off", Expires: exp}
	first, err := e.st.IssueCoupons(ctx, tenant, "club", issue)
	if err != nil {
		t.Fatal(err)
	}
	if first.Issued != 2 || len(first.Coupons) != 2 || first.Coupons[0].Customer != "m1" || first.Coupons[1].Customer != "m2" ||
		!slices.Equal(first.NotMembers, []string{"x"}) {
		t.Fatalf("issued %d, coupons %+v, not members %v", first.Issued, first.Coupons, first.NotMembers)
	}
	for _, c := range first.Coupons {
		if c.Campaign != "spring" || c.Reward || c.Description != "10% off" || !c.Expires.Equal(exp) || !c.Issued.Equal(t0) ||
			c.State != store.CouponIssued || len(c.Code) < 12 || !ident.Valid(c.Code) {
			t.Fatalf("coupon %+v", c)
		}
	}
	if first.Coupons[0].Code == first.Coupons[1].Code {
		t.Fatal("two members share a code")
	}

	// A retry issues nothing and returns the same coupons.
	e.clk.Advance(time.Hour)
	before := snapshotDB(t, e.db)
	again, err := e.st.IssueCoupons(ctx, tenant, "club", issue)
	if err != nil || again.Issued != 0 || len(again.Coupons) != 2 || *again.Coupons[0] != *first.Coupons[0] || *again.Coupons[1] != *first.Coupons[1] {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	unchanged(t, e.db, before, "a retried issue")

	// The same campaign with other terms, or an expiry not in the future, is refused.
	for _, bad := range []struct {
		edit func(*store.Issue)
		want error
	}{
		{func(i *store.Issue) { i.Description = "20% off" }, fault.ErrAlreadyExists},
		{func(i *store.Issue) { i.Expires = exp.Add(day) }, fault.ErrAlreadyExists},
		{func(i *store.Issue) { i.Campaign, i.Expires = "autumn", e.clk.Now() }, fault.ErrInvalid},
	} {
		in := issue
		bad.edit(&in)
		_, err := e.st.IssueCoupons(ctx, tenant, "club", in)
		wantErr(t, err, bad.want, fmt.Sprintf("issue %+v", in))
	}
	_, err = e.st.IssueCoupons(ctx, tenant, "nope", issue)
	wantErr(t, err, fault.ErrNotFound, "issue in an unknown programme")
	unchanged(t, e.db, before, "refused issues")

	// A customer who enrols later gets one on the next issue; the others keep theirs.
	e.enroll("club", "x", "", 0)
	third, err := e.st.IssueCoupons(ctx, tenant, "club", issue)
	if err != nil || third.Issued != 1 || len(third.Coupons) != 3 || third.Coupons[1].Customer != "x" || len(third.NotMembers) != 0 {
		t.Fatalf("after x enrolled: %+v, %v", third, err)
	}
	// Another campaign gives the same member another coupon.
	other, err := e.st.IssueCoupons(ctx, tenant, "club", store.Issue{Campaign: "autumn", Customers: []string{"m1"}, Description: "5% off", Expires: exp})
	if err != nil || other.Issued != 1 || other.Coupons[0].Code == first.Coupons[0].Code {
		t.Fatalf("another campaign: %+v, %v", other, err)
	}
	// Coupons of a campaign are used like any other.
	if _, err := e.st.UseCoupon(ctx, tenant, "club", first.Coupons[1].Code, "m2", ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.UseCoupon(ctx, tenant, "club", first.Coupons[1].Code, "m2", "")
	wantErr(t, err, fault.ErrFailedPrecondition, "a campaign coupon used twice")
}

// TestIssueCouponsManyMembers issues past one transaction's batch.
func TestIssueCouponsManyMembers(t *testing.T) {
	opts := store.Options()
	opts.NoSync = true // a thousand enrolments; durability is not what is tested
	e := newEnvOpts(t, opts)
	e.program(domain.Program{})
	var ids []string
	for i := range 1200 {
		id := fmt.Sprintf("c%04d", i)
		ids = append(ids, id)
		if i%100 != 7 {
			e.enroll("club", id, "", 0)
		}
	}
	issue := store.Issue{Campaign: "all", Customers: ids, Description: "gift", Expires: t0.Add(day)}
	first, err := e.st.IssueCoupons(ctx, tenant, "club", issue)
	if err != nil {
		t.Fatal(err)
	}
	if first.Issued != 1188 || len(first.Coupons) != 1188 || len(first.NotMembers) != 12 {
		t.Fatalf("issued %d, %d coupons, %d not members", first.Issued, len(first.Coupons), len(first.NotMembers))
	}
	codes := map[string]bool{}
	for _, c := range first.Coupons {
		codes[c.Code] = true
	}
	if len(codes) != 1188 {
		t.Fatalf("%d distinct codes for 1188 coupons", len(codes))
	}
	again, err := e.st.IssueCoupons(ctx, tenant, "club", issue)
	if err != nil || again.Issued != 0 || len(again.Coupons) != 1188 {
		t.Fatalf("retry: issued %d, %d coupons, %v", again.Issued, len(again.Coupons), err)
	}
}

// TestCouponCodesAreSecret: the same coupon in two databases gets two
// codes, so a code cannot be computed from the ids it stands for.
func TestCouponCodesAreSecret(t *testing.T) {
	var codes []string
	for range 2 {
		e := rewardEnv(t, map[string]int64{"m1": 0})
		r, err := e.st.IssueCoupons(ctx, tenant, "club", store.Issue{Campaign: "c", Customers: []string{"m1"}, Description: "d", Expires: t0.Add(day)})
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, r.Coupons[0].Code)
	}
	if codes[0] == codes[1] {
		t.Fatalf("two databases gave the same code %s", codes[0])
	}
}
