// Package convert maps segmentation's domain types to and from the
// generated API types, and reads the profile feed's payloads into the
// domain's ProfileEvent. It is the one place the two meet.
package convert

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/services/segmentation/domain"
)

// Timestamp converts a time, nil for the zero time.
func Timestamp(t time.Time) *timestamppb.Timestamp { return domain.TimestampToProto(t) }

// FeaturesToProto converts features for the API and for rules; see
// domain.FeaturesToProto.
func FeaturesToProto(f domain.Features) *segmentationv1.Features { return domain.FeaturesToProto(f) }

// ScoreToProto converts population scores; see domain.ScoreToProto.
func ScoreToProto(s domain.Score) *segmentationv1.Scores { return domain.ScoreToProto(s) }

// SettingsToProto converts settings.
func SettingsToProto(s domain.Settings) *segmentationv1.Settings {
	return &segmentationv1.Settings{
		Currency:       s.Currency,
		PlatinumShare:  s.PlatinumShare,
		GoldShare:      s.GoldShare,
		IronShare:      s.IronShare,
		ValueMeasure:   segmentationv1.ValueMeasure(s.Value),
		LoyaltyMeasure: segmentationv1.LoyaltyMeasure(s.Loyalty),
		ValueSplit:     s.ValueSplit,
		LoyaltySplit:   s.LoyaltySplit,

		ValueModelUnit:             segmentationv1.TimeUnit(s.ValueModel.Unit),
		ValueModelFitIntervalHours: s.ValueModel.FitIntervalHours,
		ClvHorizonDays:             s.ValueModel.HorizonDays,
		ClvAnnualDiscountRate:      s.ValueModel.AnnualDiscountRate,
		ClvMargin:                  s.ValueModel.Margin,
		ActiveThreshold:            s.ValueModel.ActiveThreshold,
		LostThreshold:              s.ValueModel.LostThreshold,
	}
}

// SettingsFromProto converts settings from a request.
func SettingsFromProto(p *segmentationv1.Settings) domain.Settings {
	return domain.Settings{
		Currency:      p.GetCurrency(),
		PlatinumShare: p.GetPlatinumShare(),
		GoldShare:     p.GetGoldShare(),
		IronShare:     p.GetIronShare(),
		Value:         domain.ValueMeasure(p.GetValueMeasure()),
		Loyalty:       domain.LoyaltyMeasure(p.GetLoyaltyMeasure()),
		ValueSplit:    p.GetValueSplit(),
		LoyaltySplit:  p.GetLoyaltySplit(),
		ValueModel: domain.ValueModelSettings{
			Unit:               domain.TimeUnit(p.GetValueModelUnit()),
			FitIntervalHours:   p.GetValueModelFitIntervalHours(),
			HorizonDays:        p.GetClvHorizonDays(),
			AnnualDiscountRate: p.GetClvAnnualDiscountRate(),
			Margin:             p.GetClvMargin(),
			ActiveThreshold:    p.GetActiveThreshold(),
			LostThreshold:      p.GetLostThreshold(),
		},
	}
}

// CustomerValueToProto converts a customer's value; nil stays nil.
func CustomerValueToProto(v *domain.CustomerValue) *segmentationv1.CustomerValue {
	if v == nil {
		return nil
	}
	return &segmentationv1.CustomerValue{
		FitId:             v.FitID,
		RepeatPurchases:   int64(v.X),
		Recency:           v.TX,
		Age:               v.T,
		PAlive:            v.PAlive,
		Activity:          segmentationv1.Activity(v.Activity),
		ExpectedPurchases: v.ExpectedPurchases,
		ExpectedSpend:     v.ExpectedSpend,
		Clv:               v.CLV,
		HorizonDays:       v.HorizonDays,
	}
}

// ProfileEventFromProto reads the part of a profile timeline record
// segmentation needs. Kinds segmentation does not count become EventOther.
func ProfileEventFromProto(e *profilev1.Event) domain.ProfileEvent {
	pe := domain.ProfileEvent{ID: e.GetEventId(), At: e.GetOccurTime().AsTime().UTC()}
	switch k := e.GetKind().(type) {
	case *profilev1.Event_Purchase:
		pe.Kind = domain.EventPurchase
		pe.OrderID = k.Purchase.GetOrderId()
		pe.Amount = k.Purchase.GetAmount().GetAmountMinor()
		pe.Currency = k.Purchase.GetAmount().GetCurrency()
	case *profilev1.Event_Refund:
		pe.Kind = domain.EventRefund
		pe.OrderID = k.Refund.GetOrderId()
		pe.Amount = k.Refund.GetAmount().GetAmountMinor()
		pe.Currency = k.Refund.GetAmount().GetCurrency()
	case *profilev1.Event_Complaint:
		pe.Kind = domain.EventComplaint
		pe.ComplaintID = k.Complaint.GetComplaintId()
	case *profilev1.Event_Survey:
		pe.Kind = domain.EventSurvey
		if k.Survey.Csat != nil {
			v := k.Survey.GetCsat()
			pe.CSAT = &v
		}
		if k.Survey.Nps != nil {
			v := k.Survey.GetNps()
			pe.NPS = &v
		}
	case *profilev1.Event_ContactLog:
		pe.Kind = domain.EventContactLog
	case *profilev1.Event_Referral:
		pe.Kind = domain.EventReferral
	default:
		pe.Kind = domain.EventOther
	}
	return pe
}
