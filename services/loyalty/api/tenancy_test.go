package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/tenancy"
)

var (
	tenantA = as("tenant-a")
	tenantB = as("tenant-b")
)

// seedB gives tenant-b a programme with a member, points, a reward and a
// coupon; tenant-a has only its own programme "club" with no members.
func seedB(t *testing.T, h *harness) (coupon string) {
	t.Helper()
	h.program(t, tenantB)
	h.member(t, tenantB, "b-1", 500)
	if _, err := h.client.CreateReward(tenantB, &loyaltyv1.CreateRewardRequest{ProgramId: "club",
		Reward: &loyaltyv1.Reward{RewardId: "mug", DisplayName: "Mug", Points: 100, Stock: 5}}); err != nil {
		t.Fatal(err)
	}
	r, err := h.client.RedeemReward(tenantB, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "b-1", IdempotencyKey: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	// tenant-a's own "club", with other rules (so another etag).
	if _, err := h.client.CreateProgram(tenantA, &loyaltyv1.CreateProgramRequest{Program: &loyaltyv1.Program{
		ProgramId: "club", DisplayName: "A Club", Currency: "EUR", PointsPerUnit: 2}}); err != nil {
		t.Fatal(err)
	}
	return r.Coupon.Code
}

// snapshotB reads everything tenant-b can see of its own data.
func snapshotB(t *testing.T, h *harness, coupon string) []proto.Message {
	t.Helper()
	var out []proto.Message
	must := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("tenant-b snapshot: %v", err)
		}
		out = append(out, m)
	}
	must(h.client.GetProgram(tenantB, &loyaltyv1.GetProgramRequest{ProgramId: "club"}))
	must(h.client.ListPrograms(tenantB, &loyaltyv1.ListProgramsRequest{}))
	must(h.client.GetMember(tenantB, &loyaltyv1.GetMemberRequest{ProgramId: "club", CustomerId: "b-1"}))
	must(h.client.ListEntries(tenantB, &loyaltyv1.ListEntriesRequest{ProgramId: "club", CustomerId: "b-1"}))
	must(h.client.ListRewards(tenantB, &loyaltyv1.ListRewardsRequest{ProgramId: "club"}))
	must(h.client.GetCoupon(tenantB, &loyaltyv1.GetCouponRequest{ProgramId: "club", Code: coupon}))
	must(h.client.Reconcile(tenantB, &loyaltyv1.ReconcileRequest{ProgramId: "club"}))
	for _, e := range followAll(t, h, tenantB) {
		out = append(out, e)
	}
	return out
}

func followAll(t *testing.T, h *harness, ctx context.Context) []proto.Message {
	t.Helper()
	s, err := h.client.FollowChanges(ctx, &loyaltyv1.FollowChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []proto.Message
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Event)
	}
}

// crossTenantCalls has, for every RPC of LoyaltyService, a call made as
// tenant-a with tenant-b's ids: it must answer NotFound or with tenant-a's
// own data. TestTenancyWalk fails when an RPC has no entry here.
var crossTenantCalls = map[string]func(t *testing.T, h *harness, coupon string){
	"CreateProgram": func(t *testing.T, h *harness, _ string) {
		// tenant-b's rules under tenant-a's id: tenant-a's own "club" has other rules.
		_, err := h.client.CreateProgram(tenantA, &loyaltyv1.CreateProgramRequest{Program: &loyaltyv1.Program{
			ProgramId: "club", DisplayName: "Club", Currency: "EUR", PointsPerUnit: 1}})
		wantCode(t, err, codes.AlreadyExists)
	},
	"GetProgram": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.GetProgram(tenantA, &loyaltyv1.GetProgramRequest{ProgramId: "nosuch"})
		wantCode(t, err, codes.NotFound)
	},
	"UpdateProgram": func(t *testing.T, h *harness, _ string) {
		b, err := h.client.GetProgram(tenantB, &loyaltyv1.GetProgramRequest{ProgramId: "club"})
		if err != nil {
			t.Fatal(err)
		}
		// tenant-b's etag does not open tenant-a's programme, and tenant-b's stays as it is.
		p := proto.Clone(b.Program).(*loyaltyv1.Program)
		p.DisplayName = "hijacked"
		_, err = h.client.UpdateProgram(tenantA, &loyaltyv1.UpdateProgramRequest{Program: p})
		wantCode(t, err, codes.Aborted)
	},
	"ListPrograms": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.ListPrograms(tenantA, &loyaltyv1.ListProgramsRequest{})
		if err != nil || len(r.Programs) != 1 {
			t.Errorf("tenant-a programmes: %v, %v", r, err)
		}
	},
	"EnrollMember": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.EnrollMember(tenantA, &loyaltyv1.EnrollMemberRequest{ProgramId: "club", CustomerId: "b-1"})
		if err != nil || !r.Created || r.Member.Balance != 0 {
			t.Errorf("enrol tenant-b's id in tenant-a: %v, %v", r, err)
		}
	},
	"GetMember": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.GetMember(tenantA, &loyaltyv1.GetMemberRequest{ProgramId: "club", CustomerId: "b-1"})
		wantCode(t, err, codes.NotFound)
	},
	"Earn": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.Earn(tenantA, &loyaltyv1.EarnRequest{ProgramId: "club", CustomerId: "b-1", IdempotencyKey: "seed", Points: 5})
		wantCode(t, err, codes.NotFound)
	},
	"Redeem": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.Redeem(tenantA, &loyaltyv1.RedeemRequest{ProgramId: "club", CustomerId: "b-1", IdempotencyKey: "x", Points: 5})
		wantCode(t, err, codes.NotFound)
	},
	"Reverse": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.Reverse(tenantA, &loyaltyv1.ReverseRequest{ProgramId: "club", CustomerId: "b-1", IdempotencyKey: "x",
			OrderId: "o", RefundedTotal: money(100)})
		wantCode(t, err, codes.NotFound)
	},
	"Adjust": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.Adjust(tenantA, &loyaltyv1.AdjustRequest{ProgramId: "club", CustomerId: "b-1", IdempotencyKey: "x",
			Points: -5, Reason: "r", Actor: "a"})
		wantCode(t, err, codes.NotFound)
	},
	"ListEntries": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.ListEntries(tenantA, &loyaltyv1.ListEntriesRequest{ProgramId: "club", CustomerId: "b-1"})
		wantCode(t, err, codes.NotFound)
	},
	"Reconcile": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.Reconcile(tenantA, &loyaltyv1.ReconcileRequest{ProgramId: "club"})
		if err != nil || r.Members != 0 || r.Entries != 0 {
			t.Errorf("tenant-a reconciliation: %v, %v", r, err)
		}
	},
	"CreateReward": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.CreateReward(tenantA, &loyaltyv1.CreateRewardRequest{ProgramId: "club",
			Reward: &loyaltyv1.Reward{RewardId: "mug", DisplayName: "Other mug", Points: 1, Stock: 1}})
		if err != nil || !r.Created {
			t.Errorf("tenant-b's reward id is free in tenant-a: %v, %v", r, err)
		}
	},
	"ListRewards": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.ListRewards(tenantA, &loyaltyv1.ListRewardsRequest{ProgramId: "club"})
		if err != nil || len(r.Rewards) != 0 {
			t.Errorf("tenant-a rewards: %v, %v", r, err)
		}
	},
	"RedeemReward": func(t *testing.T, h *harness, _ string) {
		_, err := h.client.RedeemReward(tenantA, &loyaltyv1.RedeemRewardRequest{ProgramId: "club", RewardId: "mug", CustomerId: "b-1", IdempotencyKey: "r1"})
		wantCode(t, err, codes.NotFound)
	},
	"IssueCoupons": func(t *testing.T, h *harness, _ string) {
		r, err := h.client.IssueCoupons(tenantA, &loyaltyv1.IssueCouponsRequest{ProgramId: "club", CampaignId: "c", CustomerIds: []string{"b-1"},
			Description: "d", ExpireTime: timestamppb.New(t0.Add(48 * day))})
		if err != nil || r.Issued != 0 || len(r.NotMembers) != 1 {
			t.Errorf("issue to tenant-b's member as tenant-a: %v, %v", r, err)
		}
	},
	"GetCoupon": func(t *testing.T, h *harness, coupon string) {
		_, err := h.client.GetCoupon(tenantA, &loyaltyv1.GetCouponRequest{ProgramId: "club", Code: coupon})
		wantCode(t, err, codes.NotFound)
	},
	"UseCoupon": func(t *testing.T, h *harness, coupon string) {
		_, err := h.client.UseCoupon(tenantA, &loyaltyv1.UseCouponRequest{ProgramId: "club", Code: coupon, CustomerId: "b-1"})
		wantCode(t, err, codes.NotFound)
	},
	"FollowChanges": func(t *testing.T, h *harness, _ string) {
		if evs := followAll(t, h, tenantA); len(evs) != 0 {
			t.Errorf("tenant-a's feed carries %d events", len(evs))
		}
	},
}

// TestTenancyWalk calls every RPC as tenant-a with tenant-b's ids and
// checks tenant-b's data is neither returned nor changed.
func TestTenancyWalk(t *testing.T) {
	desc := loyaltyv1.LoyaltyService_ServiceDesc
	var names []string
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range desc.Streams {
		names = append(names, s.StreamName)
	}
	for _, name := range names {
		call := crossTenantCalls[name]
		if call == nil {
			t.Errorf("RPC %s has no case in crossTenantCalls: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			h := start(t)
			coupon := seedB(t, h)
			before := snapshotB(t, h, coupon)
			call(t, h, coupon)
			after := snapshotB(t, h, coupon)
			if len(before) != len(after) {
				t.Fatalf("%s as tenant-a changed tenant-b's data: %d messages before, %d after", name, len(before), len(after))
			}
			for i := range before {
				if !proto.Equal(before[i], after[i]) {
					t.Errorf("%s as tenant-a changed tenant-b's data:\nbefore %v\nafter  %v", name, before[i], after[i])
				}
			}
		})
	}
	if len(crossTenantCalls) != len(names) {
		t.Errorf("crossTenantCalls has %d cases for %d RPCs", len(crossTenantCalls), len(names))
	}
}

// TestEveryRPCNeedsATenant walks the service descriptor: a call without a
// tenant, with a malformed one, or with the wildcard on anything but the
// feed is refused before it reaches a handler.
func TestEveryRPCNeedsATenant(t *testing.T) {
	h := start(t)
	sd := loyaltyv1.File_rapport_loyalty_v1_loyalty_proto.Services().ByName("LoyaltyService")
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
		t.Run(string(md.Name()), func(t *testing.T) {
			call := func(ctx context.Context) error {
				in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
				if err != nil {
					t.Fatal(err)
				}
				out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
				if err != nil {
					t.Fatal(err)
				}
				if !md.IsStreamingServer() {
					return h.conn.Invoke(ctx, full, in.New().Interface(), out.New().Interface())
				}
				s, err := h.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
				if err != nil {
					return err
				}
				if err := s.SendMsg(in.New().Interface()); err != nil {
					return err
				}
				if err := s.CloseSend(); err != nil {
					return err
				}
				for {
					if err := s.RecvMsg(out.New().Interface()); err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
				}
			}
			wantCode(t, call(context.Background()), codes.InvalidArgument, tenancy.MetadataKey)
			bad := metadata.AppendToOutgoingContext(context.Background(), tenancy.MetadataKey, "Tenant B")
			wantCode(t, call(bad), codes.InvalidArgument, tenancy.MetadataKey)
			err := call(as(tenancy.All))
			if full == loyaltyv1.LoyaltyService_FollowChanges_FullMethodName {
				if err != nil {
					t.Errorf("the feed refused the wildcard: %v", err)
				}
				return
			}
			wantCode(t, err, codes.InvalidArgument, tenancy.MetadataKey)
		})
	}
}

func money(minor int64) *typev1.Money { return &typev1.Money{AmountMinor: minor, Currency: "EUR"} }
