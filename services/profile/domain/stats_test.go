package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"rapport.dev/services/profile/domain"
)

// day is a time on the n-th day of May 2025.
func day(n int) time.Time { return time.Date(2025, 5, n, 10, 0, 0, 0, time.UTC) }

func buy(id, order string, m domain.Money, discount int64, at time.Time) *domain.Event {
	p := &domain.Purchase{OrderID: order, Amount: m}
	if discount > 0 {
		p.Discount = domain.Money{Minor: discount, Currency: m.Currency}
	}
	return &domain.Event{ID: id, CustomerID: "c-1", OccurTime: at, Purchase: p}
}

func refundOf(id, order string, m domain.Money, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: "c-1", OccurTime: at, Refund: &domain.Refund{OrderID: order, Amount: m}}
}

func complain(id, complaintID string, status int32, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: "c-1", OccurTime: at, Complaint: &domain.Complaint{ComplaintID: complaintID, Severity: 2, Status: status}}
}

func surveyed(id string, csat, nps *int32, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: "c-1", OccurTime: at, Survey: &domain.Survey{CSAT: csat, NPS: nps}}
}

func usd(minor int64) domain.Money { return domain.Money{Minor: minor, Currency: "USD"} }

// mixedEvents is a timeline with every kind that counts, in no particular order.
func mixedEvents() []*domain.Event {
	return []*domain.Event{
		buy("e1", "o1", cny(10_000), 1_000, day(3)),
		buy("e2", "o2", usd(2_000), 0, day(1)),
		buy("e3", "o3", cny(5_000), 0, day(9)),
		refundOf("e4", "o1", cny(3_000), day(4)),
		complain("e5", "k1", 1, day(5)),
		complain("e6", "k1", 3, day(6)), // the same complaint, resolved: still one
		complain("e7", "k2", 1, day(7)),
		surveyed("e8", ptr[int32](4), ptr[int32](9), day(20)), // the newest NPS answer
		surveyed("e9", ptr[int32](5), ptr[int32](3), day(10)), // applied later, but older
		surveyed("e10", ptr[int32](2), nil, day(11)),
		{ID: "e11", CustomerID: "c-1", OccurTime: day(12), ContactLog: &domain.ContactLog{Method: 1, Outcome: 1}},
		{ID: "e12", CustomerID: "c-1", OccurTime: day(2), ContactLog: &domain.ContactLog{Method: 1, Outcome: 2}},
		{ID: "e13", CustomerID: "c-1", OccurTime: day(13), Referral: &domain.Referral{ReferredCustomerID: "c-9"}},
		{ID: "e14", CustomerID: "c-1", OccurTime: day(14), Consultation: &domain.Consultation{Topic: "sizes"}},
	}
}

func statsOf(evs []*domain.Event) *domain.Stats {
	s := &domain.Stats{}
	for _, e := range evs {
		s.Apply(e)
	}
	return s
}

func TestStatsIndicators(t *testing.T) {
	got := statsOf(mixedEvents()).Indicators("c-1")
	want := domain.CustomerIndicators{
		CustomerID:    "c-1",
		Purchases:     3,
		Refunds:       1,
		RepeatBuyer:   true,
		Complaints:    2,         // k1 and k2; k1's status change is not a second complaint
		ComplaintRate: 2.0 / 3.0, // complaints per purchase
		CSATCount:     3,
		AverageCSAT:   11.0 / 3.0,
		NPSCount:      2,
		LastNPS:       9, // the answer given last, not the one recorded last
		Totals: []domain.CurrencyTotals{
			{Currency: "CNY", Purchased: 15_000, Refunded: 3_000, Net: 12_000, Discount: 1_000},
			{Currency: "USD", Purchased: 2_000, Net: 2_000},
		},
		DiscountedPurchaseShare: 1.0 / 3.0,
		FirstPurchase:           day(1),
		LastPurchase:            day(9),
		Referrals:               1,
		LastContact:             day(12),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indicators (-want +got):\n%s", diff)
	}

	// Apply is order-independent: the counters need no rebuild when events
	// arrive late.
	rev := slices.Clone(mixedEvents())
	slices.Reverse(rev)
	if diff := cmp.Diff(got, statsOf(rev).Indicators("c-1")); diff != "" {
		t.Errorf("indicators depend on the order of Apply (-forward +reversed):\n%s", diff)
	}
}

func TestStatsIndicatorsEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		evs  []*domain.Event
		want domain.CustomerIndicators
	}{
		{"nothing", nil, domain.CustomerIndicators{CustomerID: "c-1", LastNPS: -1}},
		{"one purchase is not a repeat buyer", []*domain.Event{buy("e1", "o1", cny(100), 0, day(1))},
			domain.CustomerIndicators{CustomerID: "c-1", Purchases: 1, LastNPS: -1,
				Totals:        []domain.CurrencyTotals{{Currency: "CNY", Purchased: 100, Net: 100}},
				FirstPurchase: day(1), LastPurchase: day(1)}},
		{"NPS 0 is an answer", []*domain.Event{surveyed("e1", nil, ptr[int32](0), day(1))},
			domain.CustomerIndicators{CustomerID: "c-1", NPSCount: 1, LastNPS: 0}},
		{"complaints without purchases", []*domain.Event{complain("e1", "k1", 1, day(1))},
			domain.CustomerIndicators{CustomerID: "c-1", Complaints: 1, LastNPS: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, statsOf(tc.evs).Indicators("c-1")); diff != "" {
				t.Errorf("indicators (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatsMergeEqualsApplyingBoth(t *testing.T) {
	all := mixedEvents()
	// Split so both halves have purchases, complaints (one id in both),
	// NPS answers and contacts, and the newest of each is on either side.
	var a, b []*domain.Event
	for i, e := range all {
		if i%2 == 0 {
			a = append(a, e)
		} else {
			b = append(b, e)
		}
	}
	b = append(b, complain("e15", "k1", 4, day(15)))
	whole := statsOf(append(slices.Clone(all), b[len(b)-1]))

	for _, order := range []struct {
		name string
		x, y []*domain.Event
	}{{"a into b", b, a}, {"b into a", a, b}} {
		t.Run(order.name, func(t *testing.T) {
			merged := statsOf(order.x)
			merged.Merge(statsOf(order.y))
			if diff := cmp.Diff(whole, merged); diff != "" {
				t.Errorf("merged stats differ from applying both timelines (-applied +merged):\n%s", diff)
			}
		})
	}
	// Merging empty stats changes nothing.
	s := statsOf(all)
	s.Merge(&domain.Stats{})
	if diff := cmp.Diff(statsOf(all), s, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("merging nothing (-want +got):\n%s", diff)
	}
}

func TestTenantStatsAddIsSymmetric(t *testing.T) {
	c := validPerson() // referred
	s := statsOf(mixedEvents())

	var ts domain.TenantStats
	ts.Add(c, s, 1)
	want := domain.TenantStats{
		Customers: 1, Referred: 1, Buyers: 1, RepeatBuyers: 1, Purchases: 3, DiscountedPurchases: 1,
		Complaints: 2, CSATSum: 11, CSATCount: 3, Promoters: 1, Detractors: 1,
		Totals: map[string]*domain.Totals{"CNY": {Purchased: 15_000, Refunded: 3_000, Discount: 1_000}, "USD": {Purchased: 2_000}},
	}
	if diff := cmp.Diff(want, ts); diff != "" {
		t.Errorf("after +1 (-want +got):\n%s", diff)
	}
	ts.Add(c, s, -1)
	// An emptied currency map is stored as nothing (omitempty), like nil.
	if diff := cmp.Diff(domain.TenantStats{}, ts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after +1 and -1 (-want zero +got):\n%s", diff)
	}

	// A customer without stats counts as a customer only.
	ts = domain.TenantStats{}
	ts.Add(&domain.Customer{ID: "x"}, nil, 1)
	if diff := cmp.Diff(domain.TenantStats{Customers: 1}, ts); diff != "" {
		t.Errorf("customer without events (-want +got):\n%s", diff)
	}
	// A merged-away customer contributes nothing either way.
	ts = domain.TenantStats{}
	ts.Add(&domain.Customer{ID: "y", MergedInto: "x"}, s, 1)
	if diff := cmp.Diff(domain.TenantStats{}, ts); diff != "" {
		t.Errorf("merged-away customer (-want +got):\n%s", diff)
	}
}

func TestTenantIndicators(t *testing.T) {
	ts := domain.TenantStats{
		Customers: 10, Referred: 3, Buyers: 4, RepeatBuyers: 1, Purchases: 8, DiscountedPurchases: 2,
		Complaints: 2, CSATSum: 18, CSATCount: 4, Promoters: 3, Passives: 1, Detractors: 1,
		Totals: map[string]*domain.Totals{"USD": {Purchased: 10}, "CNY": {Purchased: 900, Refunded: 100, Discount: 50}},
	}
	want := domain.TenantIndicators{
		Customers: 10, Buyers: 4, RepeatBuyers: 1, RepurchaseRate: 0.25, Purchases: 8,
		Complaints: 2, ComplaintRate: 0.25, AverageCSAT: 4.5, CSATCount: 4,
		NPS: 40, Promoters: 3, Passives: 1, Detractors: 1,
		Totals: []domain.CurrencyTotals{ // sorted by currency
			{Currency: "CNY", Purchased: 900, Refunded: 100, Net: 800, Discount: 50},
			{Currency: "USD", Purchased: 10, Net: 10},
		},
		DiscountedPurchaseShare: 0.25,
		ReferredCustomers:       3,
	}
	if diff := cmp.Diff(want, ts.Indicators()); diff != "" {
		t.Errorf("tenant indicators (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(domain.TenantIndicators{}, (&domain.TenantStats{}).Indicators()); diff != "" {
		t.Errorf("empty tenant: no division by zero (-want +got):\n%s", diff)
	}
}
