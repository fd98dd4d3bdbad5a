package api

import (
	"context"
	"fmt"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/loyalty/convert"
	"rapport.dev/services/loyalty/store"
)

const (
	// maxIssueIDs bounds the customer_ids of one IssueCoupons call.
	maxIssueIDs = 1000
	// MaxSegmentIssue bounds the members of a segment IssueCoupons issues
	// to in one call.
	MaxSegmentIssue = 100_000
	// segmentPage is the page size SegmentMembersOf asks for.
	segmentPage = 10_000
)

// CreateReward implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) CreateReward(ctx context.Context, req *loyaltyv1.CreateRewardRequest) (*loyaltyv1.CreateRewardResponse, error) {
	var v fault.Violations
	r := rewardFromProto(req.GetReward())
	if req.GetReward() == nil {
		v.Add("reward", "is required")
	} else {
		v.Merge("reward", r.Validate())
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out, created, err := s.store.CreateReward(ctx, tenant, req.GetProgramId(), r)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.CreateRewardResponse{Reward: rewardToProto(out), Created: created}, nil
}

// ListRewards implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) ListRewards(ctx context.Context, req *loyaltyv1.ListRewardsRequest) (*loyaltyv1.ListRewardsResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	rs, err := s.store.ListRewards(ctx, tenant, req.GetProgramId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &loyaltyv1.ListRewardsResponse{}
	for _, r := range rs {
		out.Rewards = append(out.Rewards, rewardToProto(r))
	}
	return out, nil
}

// RedeemReward implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) RedeemReward(ctx context.Context, req *loyaltyv1.RedeemRewardRequest) (*loyaltyv1.RedeemRewardResponse, error) {
	var v fault.Violations
	ident.Check(&v, "idempotency_key", req.GetIdempotencyKey(), true)
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "reward_id", ID: req.GetRewardId()},
		ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	res, err := s.store.RedeemReward(ctx, tenant, req.GetProgramId(), req.GetRewardId(), req.GetCustomerId(), req.GetIdempotencyKey())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.RedeemRewardResponse{Entry: convert.EntryToProto(req.GetProgramId(), req.GetCustomerId(), res.Entry),
		Coupon: couponToProto(res.Coupon), Reward: rewardToProto(res.Reward)}, nil
}

// IssueCoupons implements loyaltyv1.LoyaltyServiceServer. Customers who
// are not members of the programme get no coupon: the response lists the
// coupons of those who are.
func (s *Server) IssueCoupons(ctx context.Context, req *loyaltyv1.IssueCouponsRequest) (*loyaltyv1.IssueCouponsResponse, error) {
	var v fault.Violations
	ident.Check(&v, "campaign_id", req.GetCampaignId(), true)
	ids, segment := req.GetCustomerIds(), req.GetSegmentId()
	switch {
	case len(ids) > 0 && segment != "":
		v.Add("segment_id", "must be empty when customer_ids are given")
	case len(ids) == 0 && segment == "":
		v.Add("customer_ids", "is required, unless a segment_id is given")
	case len(ids) > maxIssueIDs:
		v.Add("customer_ids", "must be at most %d, got %d; issue to a segment for more", maxIssueIDs, len(ids))
	default:
		for i, id := range ids {
			ident.Check(&v, fmt.Sprintf("customer_ids[%d]", i), id, true)
		}
	}
	ident.Check(&v, "segment_id", segment, false)
	v.Text("description", req.GetDescription(), maxText, true)
	switch t := req.GetExpireTime(); {
	case t == nil:
		v.Add("expire_time", "is required")
	case t.CheckValid() != nil:
		v.Add("expire_time", "is not a valid timestamp")
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if segment != "" {
		if s.SegmentMembers == nil {
			return nil, s.fail(ctx, fmt.Errorf("no segmentation service configured: issue to customer_ids: %w", fault.ErrFailedPrecondition))
		}
		if ids, err = s.SegmentMembers(ctx, tenant, segment); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	res, err := s.store.IssueCoupons(ctx, tenant, req.GetProgramId(), store.Issue{Campaign: req.GetCampaignId(), Customers: ids,
		Description: req.GetDescription(), Expires: convert.Time(req.GetExpireTime())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if n := len(res.NotMembers); n > 0 {
		s.log.InfoContext(ctx, "coupons not issued to customers who are not members", "tenant", tenant,
			"program", req.GetProgramId(), "campaign", req.GetCampaignId(), "skipped", n)
	}
	out := &loyaltyv1.IssueCouponsResponse{Issued: res.Issued, NotMembers: res.NotMembers}
	for _, c := range res.Coupons {
		out.Coupons = append(out.Coupons, couponToProto(c))
	}
	return out, nil
}

// GetCoupon implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) GetCoupon(ctx context.Context, req *loyaltyv1.GetCouponRequest) (*loyaltyv1.GetCouponResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "code", ID: req.GetCode()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.GetCoupon(ctx, tenant, req.GetProgramId(), req.GetCode())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.GetCouponResponse{Coupon: couponToProto(c)}, nil
}

// UseCoupon implements loyaltyv1.LoyaltyServiceServer. Using a coupon
// again with the same order_id (a retry) returns it as used the first time.
func (s *Server) UseCoupon(ctx context.Context, req *loyaltyv1.UseCouponRequest) (*loyaltyv1.UseCouponResponse, error) {
	var v fault.Violations
	ident.Check(&v, "order_id", req.GetOrderId(), false)
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "code", ID: req.GetCode()},
		ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.UseCoupon(ctx, tenant, req.GetProgramId(), req.GetCode(), req.GetCustomerId(), req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.UseCouponResponse{Coupon: couponToProto(c)}, nil
}

// SegmentMembersOf is Server.SegmentMembers over the segmentation
// service: it pages through ListSegmentMembers as the tenant, and refuses a
// segment of more than MaxSegmentIssue members.
func SegmentMembersOf(client segmentationv1.SegmentationServiceClient) func(ctx context.Context, tenant, segmentID string) ([]string, error) {
	return func(ctx context.Context, tenant, segmentID string) ([]string, error) {
		ctx = tenancy.WithTenant(ctx, tenant)
		var ids []string
		token := ""
		for {
			r, err := client.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{
				SegmentId: segmentID, PageSize: segmentPage, PageToken: token})
			if err != nil {
				return nil, err
			}
			for _, m := range r.GetMembers() {
				ids = append(ids, m.GetCustomerId())
			}
			if len(ids) > MaxSegmentIssue {
				return nil, fmt.Errorf("segment %q has more than %d members: %w", segmentID, MaxSegmentIssue, fault.ErrFailedPrecondition)
			}
			if token = r.GetNextPageToken(); token == "" {
				return ids, nil
			}
		}
	}
}

func rewardFromProto(in *loyaltyv1.Reward) store.Reward {
	return store.Reward{ID: in.GetRewardId(), Name: in.GetDisplayName(), Points: in.GetPoints(), Stock: in.GetStock(),
		CouponValidDays: in.GetCouponValidDays()}
}

func rewardToProto(r *store.Reward) *loyaltyv1.Reward {
	return &loyaltyv1.Reward{RewardId: r.ID, DisplayName: r.Name, Points: r.Points, Stock: r.Stock, CouponValidDays: r.CouponValidDays}
}

func couponToProto(c *store.Coupon) *loyaltyv1.Coupon {
	return &loyaltyv1.Coupon{Code: c.Code, CustomerId: c.Customer, CampaignId: c.Campaign, Description: c.Description,
		IssueTime: convert.Timestamp(c.Issued), ExpireTime: convert.Timestamp(c.Expires), State: loyaltyv1.CouponState(c.State),
		UseTime: convert.Timestamp(c.Used), OrderId: c.Order}
}
