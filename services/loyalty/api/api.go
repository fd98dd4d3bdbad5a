// Package api is the loyalty service's gRPC API: request validation,
// conversion and the store.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/loyalty/convert"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

// CrossTenantMethods may be called with the tenancy.All wildcard.
var CrossTenantMethods = []string{loyaltyv1.LoyaltyService_FollowChanges_FullMethodName}

// Server implements loyaltyv1.LoyaltyServiceServer.
type Server struct {
	loyaltyv1.UnimplementedLoyaltyServiceServer
	store *store.Store
	feed  *feed.Log
	log   *slog.Logger

	// SegmentMembers lists a segment's customers, for IssueCoupons to a
	// segment; nil when no segmentation service is configured.
	SegmentMembers func(ctx context.Context, tenant, segmentID string) ([]string, error)
}

// New returns the gRPC API over the store.
func New(st *store.Store, log *feed.Log, logger *slog.Logger) *Server {
	return &Server{store: st, feed: log, log: logger}
}

func (s *Server) fail(ctx context.Context, err error) error {
	return grpcserver.Status(ctx, err, s.log)
}

// maxText bounds the free text of a request (notes, reasons, names).
const maxText = 512

// CreateProgram implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) CreateProgram(ctx context.Context, req *loyaltyv1.CreateProgramRequest) (*loyaltyv1.CreateProgramResponse, error) {
	p, tenant, err := s.program(ctx, req.GetProgram())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out, created, err := s.store.CreateProgram(ctx, tenant, p)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.CreateProgramResponse{Program: convert.ProgramToProto(out), Created: created}, nil
}

// program validates a programme from a request.
func (s *Server) program(ctx context.Context, in *loyaltyv1.Program) (*domain.Program, string, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, "", err
	}
	if in == nil {
		return nil, "", fault.InvalidField("program", "is required")
	}
	p := convert.ProgramFromProto(in)
	var v fault.Violations
	v.Merge("program", p.Validate())
	if c := in.GetPointValue().GetCurrency(); c != "" && c != p.Currency {
		v.Add("program.point_value.currency", "must be the programme's currency %s", p.Currency)
	}
	for i, t := range in.GetTiers() {
		if c := t.GetBenefitValue().GetCurrency(); c != "" && c != p.Currency {
			v.Add(fmt.Sprintf("program.tiers[%d].benefit_value.currency", i), "must be the programme's currency %s", p.Currency)
		}
	}
	return p, tenant, v.Err()
}

// GetProgram implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) GetProgram(ctx context.Context, req *loyaltyv1.GetProgramRequest) (*loyaltyv1.GetProgramResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := s.store.GetProgram(ctx, tenant, req.GetProgramId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.GetProgramResponse{Program: convert.ProgramToProto(p)}, nil
}

// UpdateProgram implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) UpdateProgram(ctx context.Context, req *loyaltyv1.UpdateProgramRequest) (*loyaltyv1.UpdateProgramResponse, error) {
	p, tenant, err := s.program(ctx, req.GetProgram())
	if err == nil && p.Etag == "" {
		err = fault.InvalidField("program.etag", "is required: read the programme first")
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out, err := s.store.UpdateProgram(ctx, tenant, p)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.UpdateProgramResponse{Program: convert.ProgramToProto(out)}, nil
}

// ListPrograms implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) ListPrograms(ctx context.Context, _ *loyaltyv1.ListProgramsRequest) (*loyaltyv1.ListProgramsResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ps, err := s.store.ListPrograms(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &loyaltyv1.ListProgramsResponse{}
	for _, p := range ps {
		out.Programs = append(out.Programs, convert.ProgramToProto(p))
	}
	return out, nil
}

// EnrollMember implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) EnrollMember(ctx context.Context, req *loyaltyv1.EnrollMemberRequest) (*loyaltyv1.EnrollMemberResponse, error) {
	var v fault.Violations
	if tz := req.GetTimeZone(); tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
			v.Add("time_zone", "is not an IANA time zone: %q", tz)
		}
	}
	if m := req.GetBirthMonth(); m < 0 || m > 12 {
		v.Add("birth_month", "must be 1 to 12, or 0 when unknown; got %d", m)
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	view, created, err := s.store.Enroll(ctx, tenant, req.GetProgramId(),
		store.Enrollment{Customer: req.GetCustomerId(), TimeZone: req.GetTimeZone(), BirthMonth: req.GetBirthMonth()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.EnrollMemberResponse{Member: memberToProto(view), Created: created}, nil
}

// GetMember implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) GetMember(ctx context.Context, req *loyaltyv1.GetMemberRequest) (*loyaltyv1.GetMemberResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	view, err := s.store.Member(ctx, tenant, req.GetProgramId(), req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.GetMemberResponse{Member: memberToProto(view)}, nil
}

func memberToProto(v *store.View) *loyaltyv1.Member {
	p := v.Program
	return &loyaltyv1.Member{
		ProgramId: p.ID, CustomerId: v.Customer, EnrollTime: convert.Timestamp(v.Enrolled), TimeZone: v.TimeZone,
		BirthMonth: v.BirthMonth, Balance: v.Balance, Pending: v.Pending, ExpiringSoon: v.ExpiringSoon,
		NextExpiry: convert.Timestamp(v.NextExpiry), TierId: v.Tier, Qualifying: v.Qualifying, NextTierId: v.NextTier,
		ToNextTier: v.ToNext, GraceUntil: convert.Timestamp(v.GraceUntil),
		ValueAtStake: convert.Money(v.ValueAtStake, p.Currency), LifetimeEarned: v.LifetimeEarned,
		LifetimeRedeemed: v.LifetimeRedeemed, LifetimeExpired: v.Expired,
	}
}

// record runs a ledger operation after the checks every one shares.
func (s *Server) record(ctx context.Context, v *fault.Violations, program, customer string, op store.Op) (*store.Result, error) {
	ident.Check(v, "idempotency_key", op.Key, true)
	tenant, err := ident.Scope(ctx, v, ident.Field{Name: "program_id", ID: program}, ident.Field{Name: "customer_id", ID: customer})
	if err != nil {
		return nil, err
	}
	return s.store.Record(ctx, tenant, program, customer, op)
}

// maxPoints bounds points in one call: far above any real use, far below
// where sums could overflow.
const maxPoints = 1_000_000_000_000

func checkPoints(v *fault.Violations, n int64) {
	if n <= 0 || n > maxPoints {
		v.Add("points", "must be between 1 and %d, got %d", int64(maxPoints), n)
	}
}

// Earn implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) Earn(ctx context.Context, req *loyaltyv1.EarnRequest) (*loyaltyv1.EarnResponse, error) {
	var v fault.Violations
	op := store.Op{Kind: domain.KindEarn, Key: req.GetIdempotencyKey(), Reason: req.GetReason(), Time: convert.Time(req.GetTime())}
	v.Text("reason", req.GetReason(), maxText, false)
	if pu := req.GetPurchase(); pu != nil {
		if req.GetPoints() != 0 {
			v.Add("points", "must be unset with a purchase: the programme's rules compute them")
		}
		ident.Check(&v, "purchase.order_id", pu.GetOrderId(), true)
		if a := pu.GetAmount(); a == nil || a.GetAmountMinor() < 0 || a.GetAmountMinor() > maxPoints {
			v.Add("purchase.amount.amount_minor", "is required, from 0 to %d", int64(maxPoints))
		}
		op.Purchase = &store.Purchase{Order: pu.GetOrderId(), Amount: pu.GetAmount().GetAmountMinor(), Currency: pu.GetAmount().GetCurrency()}
		for i, l := range pu.GetLines() {
			if l.GetAmount().GetAmountMinor() < 0 || l.GetAmount().GetCurrency() != pu.GetAmount().GetCurrency() {
				v.Add(fmt.Sprintf("purchase.lines[%d].amount", i), "must be a non-negative amount in the purchase's currency")
			}
			op.Purchase.Lines = append(op.Purchase.Lines, domain.Line{Category: l.GetCategory(), Amount: l.GetAmount().GetAmountMinor()})
		}
	} else {
		checkPoints(&v, req.GetPoints())
		op.Points = req.GetPoints()
	}
	if t := req.GetTime(); t != nil && t.CheckValid() != nil {
		v.Add("time", "is not a valid timestamp")
	}
	res, err := s.record(ctx, &v, req.GetProgramId(), req.GetCustomerId(), op)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.EarnResponse{Entry: entryToProto(req.GetProgramId(), req.GetCustomerId(), res), Member: memberToProto(res.View)}, nil
}

func entryToProto(program, customer string, res *store.Result) *loyaltyv1.Entry {
	return convert.EntryToProto(program, customer, res.Entry)
}

// Redeem implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) Redeem(ctx context.Context, req *loyaltyv1.RedeemRequest) (*loyaltyv1.RedeemResponse, error) {
	var v fault.Violations
	checkPoints(&v, req.GetPoints())
	v.Text("reason", req.GetReason(), maxText, false)
	res, err := s.record(ctx, &v, req.GetProgramId(), req.GetCustomerId(),
		store.Op{Kind: domain.KindRedeem, Key: req.GetIdempotencyKey(), Points: req.GetPoints(), Reason: req.GetReason()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.RedeemResponse{Entry: entryToProto(req.GetProgramId(), req.GetCustomerId(), res), Member: memberToProto(res.View)}, nil
}

// Reverse implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) Reverse(ctx context.Context, req *loyaltyv1.ReverseRequest) (*loyaltyv1.ReverseResponse, error) {
	var v fault.Violations
	ident.Check(&v, "order_id", req.GetOrderId(), true)
	if r := req.GetRefundedTotal(); r == nil || r.GetAmountMinor() <= 0 {
		v.Add("refunded_total.amount_minor", "must be positive")
	}
	res, err := s.record(ctx, &v, req.GetProgramId(), req.GetCustomerId(),
		store.Op{Kind: domain.KindReverse, Key: req.GetIdempotencyKey(), Order: req.GetOrderId(), Refunded: req.GetRefundedTotal().GetAmountMinor()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.ReverseResponse{Entry: entryToProto(req.GetProgramId(), req.GetCustomerId(), res), Member: memberToProto(res.View)}, nil
}

// Adjust implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) Adjust(ctx context.Context, req *loyaltyv1.AdjustRequest) (*loyaltyv1.AdjustResponse, error) {
	var v fault.Violations
	if n := req.GetPoints(); n == 0 || n > maxPoints || n < -maxPoints {
		v.Add("points", "must be a non-zero change of at most %d either way, got %d", int64(maxPoints), n)
	}
	v.Text("reason", req.GetReason(), maxText, true)
	v.Text("actor", req.GetActor(), maxText, true)
	res, err := s.record(ctx, &v, req.GetProgramId(), req.GetCustomerId(), store.Op{Kind: domain.KindAdjust,
		Key: req.GetIdempotencyKey(), Points: req.GetPoints(), Reason: req.GetReason(), Actor: req.GetActor()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &loyaltyv1.AdjustResponse{Entry: entryToProto(req.GetProgramId(), req.GetCustomerId(), res), Member: memberToProto(res.View)}, nil
}

// ListEntries implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) ListEntries(ctx context.Context, req *loyaltyv1.ListEntriesRequest) (*loyaltyv1.ListEntriesResponse, error) {
	var v fault.Violations
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > 500:
		v.Add("page_size", "must be 0 to 500")
	case size == 0:
		size = 50
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()}, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	es, next, err := s.store.Entries(ctx, tenant, req.GetProgramId(), req.GetCustomerId(), req.GetPageToken(), size)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &loyaltyv1.ListEntriesResponse{NextPageToken: next}
	for _, e := range es {
		out.Entries = append(out.Entries, convert.EntryToProto(req.GetProgramId(), req.GetCustomerId(), e))
	}
	return out, nil
}

// Reconcile implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) Reconcile(ctx context.Context, req *loyaltyv1.ReconcileRequest) (*loyaltyv1.ReconcileResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "program_id", ID: req.GetProgramId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	rec, err := s.store.Reconcile(ctx, tenant, req.GetProgramId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &loyaltyv1.ReconcileResponse{Members: rec.Members, Entries: rec.Entries}
	for _, d := range rec.Differences {
		out.Differences = append(out.Differences, &loyaltyv1.Difference{CustomerId: d.Customer, Detail: d.Detail})
	}
	if len(out.Differences) > 0 {
		s.log.ErrorContext(ctx, "reconciliation found differences", "tenant", tenant, "program", req.GetProgramId(), "members", len(out.Differences))
	}
	return out, nil
}

// FollowChanges implements loyaltyv1.LoyaltyServiceServer.
func (s *Server) FollowChanges(req *loyaltyv1.FollowChangesRequest, stream loyaltyv1.LoyaltyService_FollowChangesServer) error {
	ctx := stream.Context()
	tenant, err := tenancy.FromContext(ctx)
	if err != nil {
		return s.fail(ctx, fault.InvalidField(tenancy.MetadataKey, "is required"))
	}
	err = s.feed.Serve(ctx, tenant, req.GetAfterSequence(), req.GetWait(), func(ev *feedv1.Event) error {
		return stream.Send(&loyaltyv1.FollowChangesResponse{Event: ev})
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return s.fail(ctx, err)
}
