// Package convert is the one place where loyalty's generated types meet its
// domain types.
package convert

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/services/loyalty/domain"
)

// Timestamp converts a time, nil for the zero time.
func Timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Time converts a timestamp, the zero time for nil.
func Time(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

// EntryToProto converts a ledger entry of a member.
func EntryToProto(program, customer string, e *domain.Entry) *loyaltyv1.Entry {
	out := &loyaltyv1.Entry{
		Sequence: e.Seq, IdempotencyKey: e.Key, Kind: loyaltyv1.EntryKind(e.Kind), Time: Timestamp(e.Time),
		Points: e.Points, Requested: e.Requested, OrderId: e.Order, AvailableTime: Timestamp(e.AvailableAt),
		ExpireTime: Timestamp(e.Expires), DebtPaid: e.DebtPaid, Debt: e.Debt, Shortfall: e.Shortfall,
		Reason: e.Reason, Actor: e.Actor, CustomerId: customer, ProgramId: program,
	}
	for _, t := range e.Takes {
		out.Takes = append(out.Takes, &loyaltyv1.LotTake{Lot: t.Lot, Points: t.Points})
	}
	return out
}

// Money builds a Money, nil for zero.
func Money(minor int64, currency string) *typev1.Money {
	if minor == 0 {
		return nil
	}
	return &typev1.Money{AmountMinor: minor, Currency: currency}
}

// ProgramToProto converts a programme.
func ProgramToProto(p *domain.Program) *loyaltyv1.Program {
	out := &loyaltyv1.Program{
		ProgramId: p.ID, DisplayName: p.Name, PointsName: p.PointsName, Currency: p.Currency,
		PointsPerUnit: p.PointsPerUnit, Enrollment: loyaltyv1.Enrollment(p.Enrollment),
		FirstPurchaseBonus: p.FirstPurchaseBonus, BirthdayMultiplier: p.BirthdayMultiplier, ReferralBonus: p.ReferralBonus,
		MaxPointsPerOrder: p.MaxPointsPerOrder, Expiry: loyaltyv1.ExpiryPolicy(p.Expiry), ExpiryMonths: p.ExpiryMonths,
		ReturnWindowDays: p.ReturnWindowDays, AllowNegativeBalance: p.AllowNegative, TierBasis: loyaltyv1.TierBasis(p.TierBasis),
		TierWindowDays: p.TierWindowDays, TierGraceDays: p.TierGraceDays, PointValue: Money(p.PointValue, p.Currency),
		Etag: p.Etag, CreateTime: Timestamp(p.Created), UpdateTime: Timestamp(p.Updated),
	}
	for c, m := range p.CategoryBonuses {
		out.CategoryBonuses = append(out.CategoryBonuses, &loyaltyv1.CategoryBonus{Category: c, Multiplier: m})
	}
	slices.SortFunc(out.CategoryBonuses, func(a, b *loyaltyv1.CategoryBonus) int { return strings.Compare(a.Category, b.Category) })
	for s, pts := range p.SegmentBonuses {
		out.SegmentBonuses = append(out.SegmentBonuses, &loyaltyv1.SegmentBonus{SegmentId: s, Points: pts})
	}
	slices.SortFunc(out.SegmentBonuses, func(a, b *loyaltyv1.SegmentBonus) int { return strings.Compare(a.SegmentId, b.SegmentId) })
	for _, t := range p.Tiers {
		out.Tiers = append(out.Tiers, &loyaltyv1.Tier{TierId: t.ID, DisplayName: t.Name, Threshold: t.Threshold,
			Multiplier: t.Multiplier, Benefits: t.Benefits, BenefitValue: Money(t.BenefitValue, p.Currency)})
	}
	return out
}

// ProgramFromProto reads a programme from a request. (Money fields are
// taken in the programme's currency; the API checks their currency.)
func ProgramFromProto(in *loyaltyv1.Program) *domain.Program {
	p := &domain.Program{
		ID: in.GetProgramId(), Name: in.GetDisplayName(), PointsName: in.GetPointsName(), Currency: in.GetCurrency(),
		PointsPerUnit: in.GetPointsPerUnit(), Enrollment: domain.Enrollment(in.GetEnrollment()),
		FirstPurchaseBonus: in.GetFirstPurchaseBonus(), BirthdayMultiplier: in.GetBirthdayMultiplier(),
		ReferralBonus: in.GetReferralBonus(), MaxPointsPerOrder: in.GetMaxPointsPerOrder(),
		Expiry: domain.ExpiryPolicy(in.GetExpiry()), ExpiryMonths: in.GetExpiryMonths(),
		ReturnWindowDays: in.GetReturnWindowDays(), AllowNegative: in.GetAllowNegativeBalance(),
		TierBasis: domain.TierBasis(in.GetTierBasis()), TierWindowDays: in.GetTierWindowDays(),
		TierGraceDays: in.GetTierGraceDays(), PointValue: in.GetPointValue().GetAmountMinor(), Etag: in.GetEtag(),
	}
	for _, b := range in.GetCategoryBonuses() {
		if p.CategoryBonuses == nil {
			p.CategoryBonuses = map[string]float64{}
		}
		p.CategoryBonuses[b.GetCategory()] = b.GetMultiplier()
	}
	for _, b := range in.GetSegmentBonuses() {
		if p.SegmentBonuses == nil {
			p.SegmentBonuses = map[string]int64{}
		}
		p.SegmentBonuses[b.GetSegmentId()] = b.GetPoints()
	}
	for _, t := range in.GetTiers() {
		p.Tiers = append(p.Tiers, domain.Tier{ID: t.GetTierId(), Name: t.GetDisplayName(), Threshold: t.GetThreshold(),
			Multiplier: t.GetMultiplier(), Benefits: t.GetBenefits(), BenefitValue: t.GetBenefitValue().GetAmountMinor()})
	}
	return p
}
