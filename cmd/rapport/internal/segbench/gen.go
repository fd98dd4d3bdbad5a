package segbench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
)

// Dataset is a deterministic population: customer i and its history depend
// only on the seed and i, so the reeval and postgres phases regenerate the
// same purchases chunk by chunk instead of holding ten million in memory.
type Dataset struct {
	seed uint64
	now  time.Time
	// counts are the purchases per customer; they sum to the requested total.
	counts []int32
}

// currency is the one currency of the data set, so that money features and
// PostgreSQL's sums count the same purchases.
const currency = "EUR"

// NewDataset draws purchases per customer: one in ten customers never buys;
// the others follow a Pareto law (alpha 1.6, a long tail of heavy buyers,
// capped at 1000), adjusted so the counts sum to exactly purchases.
func NewDataset(customers, purchases int, seed uint64, now time.Time) *Dataset {
	d := &Dataset{seed: seed, now: now, counts: make([]int32, customers)}
	if customers == 0 {
		return d
	}
	rng := rand.New(rand.NewPCG(seed, math.MaxUint64))
	const alpha = 1.6
	mean := float64(purchases) / float64(customers) / 0.9
	xm := math.Max(1, mean*(alpha-1)/alpha)
	total := 0
	for i := range d.counts {
		if rng.IntN(10) == 0 {
			continue
		}
		n := int32(math.Min(1000, math.Ceil(xm*math.Pow(1-rng.Float64(), -1/alpha))))
		d.counts[i] = n
		total += int(n)
	}
	// Spread the difference one purchase at a time over buying customers.
	for i := 0; total != purchases; i = (i + 1) % customers {
		switch {
		case total < purchases && (d.counts[i] > 0 || rng.IntN(10) == 0):
			d.counts[i]++
			total++
		case total > purchases && (d.counts[i] > 1 || (d.counts[i] == 1 && rng.IntN(4) == 0)):
			d.counts[i]--
			total--
		}
	}
	return d
}

// Len is the number of customers.
func (d *Dataset) Len() int { return len(d.counts) }

// CustomerID names customer i; ids sort in index order.
func CustomerID(i int) string { return fmt.Sprintf("c%07d", i) }

// purchase is one generated purchase; refunded is how much of it is refunded
// (0 for most), refundAt when.
type purchase struct {
	order    string
	at       time.Time
	amount   int64
	refunded int64
	refundAt time.Time
}

// customer is one generated customer with its history.
type customer struct {
	profile   *profilev1.Customer
	purchases []purchase
	// other are its complaints and survey answers.
	other []*profilev1.Event
}

var (
	countries = []string{"FR", "FR", "FR", "DE", "DE", "CN", "CN", "US", "AT", "CH"}
	cities    = map[string][]string{"FR": {"Paris", "Lyon", "Lille"}, "DE": {"Berlin", "Munich"}, "CN": {"Shanghai", "Hangzhou"},
		"US": {"Boston", "Austin"}, "AT": {"Vienna"}, "CH": {"Zurich", "Geneva"}}
)

// customer generates customer i: created up to three years ago, 40% of
// buyers churned (their purchases stop before now), a personal basket size
// drawn from a Pareto law (alpha 2: most spend little, a few a lot) with
// lognormal noise per purchase, 4% of purchases refunded (most in full).
func (d *Dataset) customer(i int) customer {
	rng := rand.New(rand.NewPCG(d.seed, uint64(i)))
	id := CustomerID(i)
	const day = 24 * time.Hour
	created := d.now.Add(-30*day - time.Duration(rng.Int64N(int64(3*365*day-30*day))))
	country := countries[rng.IntN(len(countries))]
	c := &profilev1.Customer{
		CustomerId:  id,
		Kind:        profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
		DisplayName: "Customer " + id,
		Region:      &profilev1.Region{Country: country, City: cities[country][rng.IntN(len(cities[country]))]},
		Language:    "en",
		CreateTime:  timestamppb.New(created),
		Attributes:  map[string]string{"channel": []string{"web", "store", "app"}[rng.IntN(3)]},
	}
	if rng.IntN(100) < 3 {
		c.Tags = append(c.Tags, "vip")
	}
	if rng.IntN(100) < 40 {
		c.Tags = append(c.Tags, "newsletter")
	}
	if rng.IntN(100) < 8 {
		c.Tags = append(c.Tags, "b2b-"+[]string{"retail", "wholesale"}[rng.IntN(2)])
	}
	switch r := rng.IntN(100); {
	case r < 10:
		c.Attributes["plan"] = "premium"
	case r < 50:
		c.Attributes["plan"] = "basic"
	}
	out := customer{profile: c}
	n := int(d.counts[i])
	end := d.now
	if rng.IntN(10) < 4 {
		end = created.Add(time.Duration(rng.Float64() * float64(d.now.Sub(created))))
	}
	span := max(int64(end.Sub(created)), 1)
	basket := math.Min(500_000, 1500*math.Pow(1-rng.Float64(), -1/2.0))
	for k := range n {
		at := created.Add(time.Duration(rng.Int64N(span))).Truncate(time.Second)
		amount := max(100, int64(basket*math.Exp(rng.NormFloat64()*0.4)))
		p := purchase{order: fmt.Sprintf("%s-%d", id, k), at: at, amount: amount}
		if rng.IntN(100) < 4 {
			p.refunded = amount
			if rng.IntN(10) < 3 {
				p.refunded = amount / 2
			}
			p.refundAt = at.Add(time.Duration(1+rng.IntN(10)) * day)
			if p.refundAt.After(d.now) {
				p.refundAt = d.now
			}
		}
		out.purchases = append(out.purchases, p)
	}
	if rng.IntN(100) < 15 {
		nps := int32(rng.IntN(11))
		out.other = append(out.other, &profilev1.Event{EventId: id + "-survey", CustomerId: id,
			OccurTime: timestamppb.New(d.now.Add(-time.Duration(rng.IntN(300)) * day)),
			Kind:      &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{Nps: &nps}}})
	}
	if rng.IntN(100) < 3 {
		out.other = append(out.other, &profilev1.Event{EventId: id + "-complaint", CustomerId: id,
			OccurTime: timestamppb.New(d.now.Add(-time.Duration(rng.IntN(200)) * day)),
			Kind:      &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: id + "-complaint"}}})
	}
	return out
}

// events are the customer's profile timeline: purchases, refunds, then
// complaints and surveys.
func (c *customer) events() []*profilev1.Event {
	out := make([]*profilev1.Event, 0, len(c.purchases)+len(c.other))
	id := c.profile.CustomerId
	for _, p := range c.purchases {
		out = append(out, &profilev1.Event{EventId: p.order, CustomerId: id, OccurTime: timestamppb.New(p.at),
			Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: p.order,
				Amount: &typev1.Money{AmountMinor: p.amount, Currency: currency}}}})
	}
	for _, p := range c.purchases {
		if p.refunded > 0 {
			out = append(out, &profilev1.Event{EventId: p.order + "-refund", CustomerId: id, OccurTime: timestamppb.New(p.refundAt),
				Kind: &profilev1.Event_Refund{Refund: &profilev1.Refund{OrderId: p.order,
					Amount: &typev1.Money{AmountMinor: p.refunded, Currency: currency}}}})
		}
	}
	return append(out, c.other...)
}

// Rules are the benchmark's dynamic segments: customer fields, features,
// windows, tenure, days_since and population scores, as a marketing team
// would write them.
var Rules = []string{
	`features.purchases >= 2 && days_since(features.last_purchase) <= 30`,
	`days_since(features.last_purchase) > 180 && features.purchases >= 3`,
	`features.monetary_365d >= 100000`,
	`scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM || scores.tier == rapport.segmentation.v1.Tier.TIER_GOLD`,
	`customer.region.country == "FR" && features.purchases_90d >= 1`,
	`"vip" in customer.tags`,
	`"plan" in customer.attributes && customer.attributes["plan"] == "premium"`,
	`features.refunds >= 1 && features.purchases_365d <= 2`,
	`features.tenure_days < 90`,
	`features.purchases == 0 && days_since(customer.create_time) >= 30`,
	`features.complaints >= 1`,
	`features.nps >= 9`,
	`features.nps >= 0 && features.nps <= 6`,
	`scores.rfm.group == rapport.segmentation.v1.RfmGroup.RFM_GROUP_AT_RISK`,
	`features.average_order >= 10000 && customer.region.country in ["DE", "AT", "CH"]`,
	`features.purchases_30d >= 2`,
	`features.mean_interpurchase_days > 0.0 && features.mean_interpurchase_days < 30.0`,
	`scores.rfm.recency >= 4 && scores.rfm.frequency <= 2`,
	`customer.tags.exists(t, t.startsWith("b2b"))`,
	`scores.quadrant == rapport.segmentation.v1.Quadrant.QUADRANT_STRATEGIC_PARTNER && days_since(features.last_purchase) > 60`,
}

// rule returns the i-th rule; past the list, the list again with a
// threshold that differs per lap, so that every segment is distinct.
func rule(i int) string {
	r := Rules[i%len(Rules)]
	if lap := i / len(Rules); lap > 0 {
		r = fmt.Sprintf("(%s) && features.purchases >= %d", r, lap-1)
	}
	return r
}
