package api_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/loyalty/api"
)

func mug() *loyaltyv1.Reward {
	return &loyaltyv1.Reward{RewardId: "mug", DisplayName: "Mug", Points: 300, Stock: 2, CouponValidDays: 10}
}

func TestRewardRedemptionOverGRPC(t *testing.T) {
	h := start(t)
	h.program(t, acme)
	h.member(t, acme, "c1", 1000)
	h.member(t, acme, "c2", 1000)

	cr, err := h.client.CreateReward(acme, &loyaltyv1.CreateRewardRequest{ProgramId: "club", Reward: mug()})
	if err != nil || !cr.Created || !proto.Equal(cr.Reward, mug()) {
		t.Fatalf("CreateReward: %v, %v", cr, err)
	}
	cr, err = h.client.CreateReward(acme, &loyaltyv1.CreateRewardRequest{ProgramId: "club", Reward: mug()})
	if err != nil || cr.Created {
		t.Fatalf("CreateReward retry: %v, %v", cr, err)
	}
	other := mug()
	other.Points = 1
	_, err = h.client.CreateReward(acme, &loyaltyv1.CreateRewardRequest{ProgramId: "club", Reward: other})
	wantCode(t, err, codes.AlreadyExists)

	redeem := &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "c1", IdempotencyKey: "k1"}
	rr, err := h.client.RedeemReward(acme, redeem)
	if err != nil {
		t.Fatal(err)
	}
	c := rr.Coupon
	if rr.Entry.Kind != loyaltyv1.EntryKind_ENTRY_KIND_REDEEM || rr.Entry.Points != -300 || rr.Entry.Reason != "reward mug" ||
		rr.Reward.Stock != 1 || c.CustomerId != "c1" || c.CampaignId != "mug" || c.Description != "Mug" ||
		c.State != loyaltyv1.CouponState_COUPON_STATE_ISSUED || !c.IssueTime.AsTime().Equal(t0) ||
		!c.ExpireTime.AsTime().Equal(t0.Add(10*day)) || c.UseTime != nil || !ident.Valid(c.Code) || len(c.Code) < 12 {
		t.Fatalf("RedeemReward: %v", rr)
	}
	if b := h.balance(t, acme, "c1"); b != 700 {
		t.Fatalf("balance %d, want 700", b)
	}
	again, err := h.client.RedeemReward(acme, redeem)
	if err != nil || !proto.Equal(again, rr) {
		t.Fatalf("retry: %v, %v; want %v", again, err, rr)
	}
	if b := h.balance(t, acme, "c1"); b != 700 {
		t.Fatalf("balance %d after a retry, want 700", b)
	}

	// Another tenant sees none of it.
	globex := as("globex")
	_, err = h.client.GetCoupon(globex, &loyaltyv1.GetCouponRequest{ProgramId: "club", Code: c.Code})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.ListRewards(globex, &loyaltyv1.ListRewardsRequest{ProgramId: "club"})
	wantCode(t, err, codes.NotFound)

	// Use: not by another member, once, and a retry of the use is answered.
	_, err = h.client.UseCoupon(acme, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: c.Code, CustomerId: "c2"})
	wantCode(t, err, codes.FailedPrecondition)
	h.clk.Advance(time.Hour)
	use := &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: c.Code, CustomerId: "c1", OrderId: "o-1"}
	ur, err := h.client.UseCoupon(acme, use)
	if err != nil || ur.Coupon.State != loyaltyv1.CouponState_COUPON_STATE_USED || ur.Coupon.OrderId != "o-1" ||
		!ur.Coupon.UseTime.AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("UseCoupon: %v, %v", ur, err)
	}
	if r, err := h.client.UseCoupon(acme, use); err != nil || !proto.Equal(r, ur) {
		t.Fatalf("UseCoupon retry: %v, %v", r, err)
	}
	_, err = h.client.UseCoupon(acme, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: c.Code, CustomerId: "c1", OrderId: "o-2"})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "already used") {
		t.Fatalf("second use says %q", status.Convert(err).Message())
	}
	_, err = h.client.UseCoupon(acme, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: "NOSUCHCODE234567", CustomerId: "c1"})
	wantCode(t, err, codes.NotFound)

	// The second unit goes to c2; then the reward is out of stock.
	rr2, err := h.client.RedeemReward(acme, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "c2", IdempotencyKey: "k1"})
	if err != nil || rr2.Reward.Stock != 0 || rr2.Coupon.Code == c.Code {
		t.Fatalf("c2's redemption: %v, %v", rr2, err)
	}
	_, err = h.client.RedeemReward(acme, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "c1", IdempotencyKey: "k2"})
	wantCode(t, err, codes.FailedPrecondition)
	if b := h.balance(t, acme, "c1"); b != 700 {
		t.Fatalf("balance %d after an out-of-stock redemption, want 700", b)
	}
	lr, err := h.client.ListRewards(acme, &loyaltyv1.ListRewardsRequest{ProgramId: "club"})
	if err != nil || len(lr.Rewards) != 1 || lr.Rewards[0].Stock != 0 {
		t.Fatalf("ListRewards: %v, %v", lr, err)
	}

	// c2's coupon expires unused.
	h.clk.Set(rr2.Coupon.ExpireTime.AsTime())
	gc, err := h.client.GetCoupon(acme, &loyaltyv1.GetCouponRequest{ProgramId: "club", Code: rr2.Coupon.Code})
	if err != nil || gc.Coupon.State != loyaltyv1.CouponState_COUPON_STATE_EXPIRED {
		t.Fatalf("GetCoupon after expiry: %v, %v", gc, err)
	}
	_, err = h.client.UseCoupon(acme, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: rr2.Coupon.Code, CustomerId: "c2"})
	wantCode(t, err, codes.FailedPrecondition)

	rec, err := h.client.Reconcile(acme, &loyaltyv1.ReconcileRequest{ProgramId: "club"})
	if err != nil || len(rec.Differences) != 0 {
		t.Fatalf("Reconcile: %v, %v", rec, err)
	}
}

func TestConcurrentRedemptionsOverGRPC(t *testing.T) {
	h := start(t)
	h.program(t, acme)
	h.member(t, acme, "c1", 10_000)
	r := mug()
	r.Stock = 3
	if _, err := h.client.CreateReward(acme, &loyaltyv1.CreateRewardRequest{ProgramId: "club", Reward: r}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codesSeen := make([]codes.Code, 8)
	for i := range codesSeen {
		wg.Go(func() {
			_, err := h.client.RedeemReward(acme, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "c1",
				IdempotencyKey: fmt.Sprintf("k%d", i)})
			codesSeen[i] = status.Code(err)
		})
	}
	wg.Wait()
	slices.Sort(codesSeen)
	want := []codes.Code{codes.OK, codes.OK, codes.OK, codes.FailedPrecondition, codes.FailedPrecondition,
		codes.FailedPrecondition, codes.FailedPrecondition, codes.FailedPrecondition}
	if !slices.Equal(codesSeen, want) {
		t.Fatalf("codes %v, want %v", codesSeen, want)
	}
	if b := h.balance(t, acme, "c1"); b != 10_000-3*300 {
		t.Fatalf("balance %d, want %d", b, 10_000-3*300)
	}
}

func TestRewardAndCouponValidation(t *testing.T) {
	h := start(t)
	h.program(t, acme)
	h.member(t, acme, "c1", 1000)
	future := timestamppb.New(t0.Add(day))
	tooMany := make([]string, 1001)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("c%d", i)
	}
	for _, tc := range []struct {
		name   string
		call   func(context.Context) error
		fields []string
	}{
		{"reward missing", func(ctx context.Context) error {
			_, err := h.client.CreateReward(ctx, &loyaltyv1.CreateRewardRequest{ProgramId: "club"})
			return err
		}, []string{"reward"}},
		{"reward all wrong", func(ctx context.Context) error {
			_, err := h.client.CreateReward(ctx, &loyaltyv1.CreateRewardRequest{ProgramId: "bad id", Reward: &loyaltyv1.Reward{
				RewardId: "a/b", Points: 0, Stock: -1, CouponValidDays: 3651}})
			return err
		}, []string{"program_id", "reward.coupon_valid_days", "reward.display_name", "reward.points", "reward.reward_id", "reward.stock"}},
		{"list without programme", func(ctx context.Context) error {
			_, err := h.client.ListRewards(ctx, &loyaltyv1.ListRewardsRequest{})
			return err
		}, []string{"program_id"}},
		{"redeem empty", func(ctx context.Context) error {
			_, err := h.client.RedeemReward(ctx, &loyaltyv1.RedeemRewardRequest{})
			return err
		}, []string{"customer_id", "idempotency_key", "program_id", "reward_id"}},
		{"redeem bad key", func(ctx context.Context) error {
			_, err := h.client.RedeemReward(ctx, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "c1", IdempotencyKey: "k 1"})
			return err
		}, []string{"idempotency_key"}},
		{"issue empty", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club"})
			return err
		}, []string{"campaign_id", "customer_ids", "description", "expire_time"}},
		{"issue to ids and a segment", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", CustomerIds: []string{"c1"},
				SegmentId: "vip", Description: "d", ExpireTime: future})
			return err
		}, []string{"segment_id"}},
		{"issue a bad id", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", CustomerIds: []string{"c1", "c 2"},
				Description: "d", ExpireTime: future})
			return err
		}, []string{"customer_ids[1]"}},
		{"issue too many", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", CustomerIds: tooMany,
				Description: "d", ExpireTime: future})
			return err
		}, []string{"customer_ids"}},
		{"issue expired", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", CustomerIds: []string{"c1"},
				Description: "d", ExpireTime: timestamppb.New(t0)})
			return err
		}, []string{"expire_time"}},
		{"issue invalid expiry", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", CustomerIds: []string{"c1"},
				Description: "d", ExpireTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}})
			return err
		}, []string{"expire_time"}},
		{"issue bad segment", func(ctx context.Context) error {
			_, err := h.client.IssueCoupons(ctx, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "x", SegmentId: "v i p",
				Description: strings.Repeat("d", 513), ExpireTime: future})
			return err
		}, []string{"description", "segment_id"}},
		{"get empty", func(ctx context.Context) error {
			_, err := h.client.GetCoupon(ctx, &loyaltyv1.GetCouponRequest{})
			return err
		}, []string{"code", "program_id"}},
		{"use all wrong", func(ctx context.Context) error {
			_, err := h.client.UseCoupon(ctx, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: "a code", OrderId: "o/1"})
			return err
		}, []string{"code", "customer_id", "order_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(acme), codes.InvalidArgument, tc.fields...)
			// Without a tenant, the tenant is what is wrong.
			wantCode(t, tc.call(context.Background()), codes.InvalidArgument, tenancy.MetadataKey)
		})
	}
	// Nothing was stored.
	lr, err := h.client.ListRewards(acme, &loyaltyv1.ListRewardsRequest{ProgramId: "club"})
	if err != nil || len(lr.Rewards) != 0 {
		t.Fatalf("rewards after refused calls: %v, %v", lr, err)
	}
	if b := h.balance(t, acme, "c1"); b != 1000 {
		t.Fatalf("balance %d after refused calls", b)
	}
}

func TestIssueCouponsOverGRPC(t *testing.T) {
	h := start(t)
	h.program(t, acme)
	h.member(t, acme, "m1", 0)
	h.member(t, acme, "m2", 0)
	req := &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "spring", CustomerIds: []string{"m1", "stranger", "m2"},
		Description: "10% off", ExpireTime: timestamppb.New(t0.Add(14 * day))}
	first, err := h.client.IssueCoupons(acme, req)
	if err != nil || first.Issued != 2 || len(first.Coupons) != 2 || first.Coupons[0].CustomerId != "m1" || first.Coupons[1].CustomerId != "m2" ||
		len(first.NotMembers) != 1 || first.NotMembers[0] != "stranger" {
		t.Fatalf("IssueCoupons: %v, %v", first, err)
	}
	again, err := h.client.IssueCoupons(acme, req)
	if err != nil || again.Issued != 0 || !proto.Equal(&loyaltyv1.IssueCouponsResponse{Coupons: first.Coupons, NotMembers: first.NotMembers}, again) {
		t.Fatalf("retry: %v, %v", again, err)
	}
	req.Description = "20% off"
	_, err = h.client.IssueCoupons(acme, req)
	wantCode(t, err, codes.AlreadyExists)

	gc, err := h.client.GetCoupon(acme, &loyaltyv1.GetCouponRequest{ProgramId: "club", Code: first.Coupons[1].Code})
	if err != nil || !proto.Equal(gc.Coupon, first.Coupons[1]) {
		t.Fatalf("GetCoupon: %v, %v", gc, err)
	}

	// Without a segmentation service, a segment cannot be resolved.
	_, err = h.client.IssueCoupons(acme, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "vip", SegmentId: "vip",
		Description: "gift", ExpireTime: timestamppb.New(t0.Add(day))})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "no segmentation service configured") {
		t.Fatalf("message %q", status.Convert(err).Message())
	}
}

// segments is a segmentation service that knows ListSegmentMembers only,
// and answers it in pages of two whatever the page size asked.
type segments struct {
	segmentationv1.UnimplementedSegmentationServiceServer
	members map[string]map[string][]string // tenant → segment → customers

	mu    sync.Mutex
	pages int
}

func (s *segments) ListSegmentMembers(ctx context.Context, req *segmentationv1.ListSegmentMembersRequest) (*segmentationv1.ListSegmentMembersResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, grpcserver.Status(ctx, err, nil)
	}
	ids, ok := s.members[tenant][req.GetSegmentId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "segment %q not found", req.GetSegmentId())
	}
	s.mu.Lock()
	s.pages++
	s.mu.Unlock()
	from := 0
	if req.GetPageToken() != "" {
		if from, err = strconv.Atoi(req.GetPageToken()); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	to := min(from+2, len(ids))
	out := &segmentationv1.ListSegmentMembersResponse{}
	for _, id := range ids[from:to] {
		out.Members = append(out.Members, &segmentationv1.Member{CustomerId: id})
	}
	if to < len(ids) {
		out.NextPageToken = strconv.Itoa(to)
	}
	return out, nil
}

func TestIssueCouponsToSegment(t *testing.T) {
	seg := &segments{members: map[string]map[string][]string{
		"acme":   {"vip": {"m1", "m2", "stranger", "m3", "m4"}},
		"globex": {"vip": {"g1"}},
	}}
	segSrv := grpcserver.New(grpcserver.Options{})
	segmentationv1.RegisterSegmentationServiceServer(segSrv.GRPC, seg)
	segClient := segmentationv1.NewSegmentationServiceClient(serve(t, segSrv))

	h := start(t, func(a *api.Server) { a.SegmentMembers = api.SegmentMembersOf(segClient) })
	h.program(t, acme)
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		h.member(t, acme, m, 0)
	}
	req := &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "vip-gift", SegmentId: "vip", Description: "gift",
		ExpireTime: timestamppb.New(t0.Add(7 * day))}
	r, err := h.client.IssueCoupons(acme, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range r.Coupons {
		got = append(got, c.CustomerId)
	}
	if r.Issued != 4 || !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) || seg.pages != 3 {
		t.Fatalf("issued %d to %v over %d pages; want 4 to m1-m4 over 3", r.Issued, got, seg.pages)
	}
	again, err := h.client.IssueCoupons(acme, req)
	if err != nil || again.Issued != 0 || len(again.Coupons) != 4 {
		t.Fatalf("retry: %v, %v", again, err)
	}

	req.SegmentId = "nosuch"
	_, err = h.client.IssueCoupons(acme, req)
	wantCode(t, err, codes.NotFound)
}
