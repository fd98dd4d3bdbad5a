package domain

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
)

// The conversions segment rules depend on live here rather than in package
// convert, which imports this one: a rule's native form must read Features
// and Score exactly as CEL reads these messages (see RuleRow).

// TimestampToProto converts a time, nil for the zero time.
func TimestampToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FeaturesToProto converts features for the API and for rules.
func FeaturesToProto(f Features) *segmentationv1.Features {
	return &segmentationv1.Features{
		FirstPurchase:         TimestampToProto(f.FirstPurchase),
		LastPurchase:          TimestampToProto(f.LastPurchase),
		Purchases:             f.Purchases,
		Purchases_30D:         f.Purchases30d,
		Purchases_90D:         f.Purchases90d,
		Purchases_365D:        f.Purchases365d,
		Monetary:              f.Monetary,
		Monetary_30D:          f.Monetary30d,
		Monetary_90D:          f.Monetary90d,
		Monetary_365D:         f.Monetary365d,
		AverageOrder:          f.AverageOrder,
		MeanInterpurchaseDays: f.MeanInterpurchaseDays,
		TenureDays:            f.TenureDays,
		Complaints:            f.Complaints,
		LastContact:           TimestampToProto(f.LastContact),
		Csat:                  f.CSAT,
		Nps:                   f.NPS,
		Referrals:             f.Referrals,
		Refunds:               f.Refunds,
		FirstSeen:             TimestampToProto(f.FirstSeen),
	}
}

// ScoreToProto converts population scores. An unranked score (R == 0) has
// no rfm message.
func ScoreToProto(s Score) *segmentationv1.Scores {
	out := &segmentationv1.Scores{
		Tier:         segmentationv1.Tier(s.Tier),
		Quadrant:     segmentationv1.Quadrant(s.Quadrant),
		Contribution: s.Contribution,
		Activity:     segmentationv1.Activity(s.Activity),
	}
	if s.R != 0 {
		out.Rfm = &segmentationv1.Rfm{Recency: s.R, Frequency: s.F, Monetary: s.M, Group: segmentationv1.RfmGroup(s.Group)}
	}
	return out
}
