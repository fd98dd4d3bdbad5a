package convert

import (
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/services/profile/domain"
)

// CustomerIndicatorsToProto maps one customer's satisfaction indicators.
func CustomerIndicatorsToProto(i domain.CustomerIndicators) *profilev1.CustomerIndicators {
	return &profilev1.CustomerIndicators{
		CustomerId:              i.CustomerID,
		PurchaseCount:           i.Purchases,
		RefundCount:             i.Refunds,
		RepeatBuyer:             i.RepeatBuyer,
		ComplaintCount:          i.Complaints,
		ComplaintRate:           i.ComplaintRate,
		CsatCount:               i.CSATCount,
		AverageCsat:             i.AverageCSAT,
		NpsCount:                i.NPSCount,
		LastNps:                 i.LastNPS,
		Totals:                  mapSlice(i.Totals, currencyTotalsToProto),
		DiscountedPurchaseShare: i.DiscountedPurchaseShare,
		FirstPurchaseTime:       timeToProto(i.FirstPurchase),
		LastPurchaseTime:        timeToProto(i.LastPurchase),
		ReferralCount:           i.Referrals,
		LastContactTime:         timeToProto(i.LastContact),
	}
}

// TenantIndicatorsToProto maps the satisfaction indicators over all customers.
func TenantIndicatorsToProto(i domain.TenantIndicators) *profilev1.TenantIndicators {
	return &profilev1.TenantIndicators{
		CustomerCount:           i.Customers,
		BuyerCount:              i.Buyers,
		RepeatBuyerCount:        i.RepeatBuyers,
		RepurchaseRate:          i.RepurchaseRate,
		PurchaseCount:           i.Purchases,
		ComplaintCount:          i.Complaints,
		ComplaintRate:           i.ComplaintRate,
		AverageCsat:             i.AverageCSAT,
		CsatCount:               i.CSATCount,
		Nps:                     i.NPS,
		Promoters:               i.Promoters,
		Passives:                i.Passives,
		Detractors:              i.Detractors,
		Totals:                  mapSlice(i.Totals, currencyTotalsToProto),
		DiscountedPurchaseShare: i.DiscountedPurchaseShare,
		ReferredCustomerCount:   i.ReferredCustomers,
	}
}

// DuplicateGroupToProto maps a group of customers sharing a phone or email.
func DuplicateGroupToProto(g domain.DuplicateGroup) *profilev1.DuplicateGroup {
	return &profilev1.DuplicateGroup{
		Match:       g.Match,
		CustomerIds: cloneStrings(g.CustomerIDs),
	}
}

func currencyTotalsToProto(t domain.CurrencyTotals) *profilev1.CurrencyTotals {
	return &profilev1.CurrencyTotals{
		Currency:       t.Currency,
		PurchasedMinor: t.Purchased,
		RefundedMinor:  t.Refunded,
		NetMinor:       t.Net,
		DiscountMinor:  t.Discount,
	}
}
