// Package domain is the segmentation service's model: the state kept per
// customer from the profile change feed (State), the features derived from
// it at an instant (Features), the population scores — RFM, the value
// pyramid and the value × loyalty quadrants (seed 003) — and the reports
// built from them. It knows nothing of gRPC or bbolt; the numbers of its
// enum types equal those of rapport.segmentation.v1.
//
// # Features
//
// Features are computed from a State at an instant now, for the tenant's
// reporting currency (Settings.Currency):
//
//   - Counts (Purchases, Purchases30d/90d/365d) count every purchase, in any
//     currency, refunded or not.
//   - Money (Monetary, Monetary30d/90d/365d, AverageOrder) counts only
//     purchases in the reporting currency, each net of its refunds. An empty
//     currency counts every purchase.
//   - A window of d days is the half-open interval (now-d·24h, now]: a
//     purchase at exactly now-30d is out of the 30-day window. Purchases
//     after now (clock skew) count in the lifetime features only.
//   - AverageOrder = Monetary / (purchases in the currency), integer
//     division, 0 without such purchases.
//   - MeanInterpurchaseDays = (last-first)/(n-1) in days over all n purchases
//     (any currency), 0 when n < 2.
//   - TenureDays = floor((now-FirstSeen)/24h), 0 when FirstSeen is zero or
//     after now.
//   - CSAT is the mean answer (0 without answers); NPS the latest answer
//     (-1 without answers).
//
// # Scores
//
// ScorePopulation scores one tenant's customers together. Only customers
// with at least one purchase are ranked; N is their number. Everyone else
// gets the zero Score (every field unspecified).
//
// RFM quintiles. For a measure x, a ranked customer's score is
//
//	score = min(5, 1 + floor(5·below/N))
//
// where below is the number of ranked customers whose x is strictly worse.
// Recency's x is LastPurchase (worse = older, so the most recent buyers get
// 5), frequency's is Purchases (lifetime), monetary's is Monetary (lifetime,
// net, reporting currency); worse = smaller. Equal values therefore always
// share a score, and the worst value always scores 1.
//
// RFM groups. Group(R, F, M) looks up R and FM = ⌈(F+M)/2⌉ (the average of
// F and M rounded half up) in this table:
//
//	        FM=1            FM=2                FM=3                FM=4       FM=5
//	R=5     new             potential loyalist  potential loyalist  champions  champions
//	R=4     promising       potential loyalist  potential loyalist  loyal      loyal
//	R=3     about to sleep  about to sleep      need attention      loyal      loyal
//	R=2     hibernating     hibernating         at risk             at risk    can't lose
//	R=1     lost            lost                at risk             at risk    can't lose
//
// Value pyramid. A ranked customer's contribution is the ValueMeasure:
// Monetary (default) or Monetary365d. Ranked customers are ordered by
// contribution descending, ties by customer id ascending (byte order);
// with the tolerant ceiling tceil(x) = ⌈x - 1e-9⌉ (float64 arithmetic) and
// shares p, g, i, the positions (1-based) 1..tceil(N·p) are platinum, up to
// tceil(N·(p+g)) gold, up to tceil(N·(p+g+i)) iron, the rest lead.
//
// Quadrants. The value threshold is the contribution at position
// k = tceil(N·ValueSplit) (clamped to 1..N) of that descending order; a
// customer is high value when contribution ≥ threshold (so ties at the
// threshold are all high). The loyalty threshold is found the same way over
// the LoyaltyMeasure as float64 — Purchases365d (default), Purchases or
// TenureDays — with LoyaltySplit. High/high is strategic partner, high
// value/low loyalty retain, low value/high loyalty develop, low/low build
// relationship. With N = 0 both thresholds are 0.
//
// # Reports
//
// The pyramid report gives per tier the customers, summed contribution and
// share of the total contribution, and the 20/80 figure: the share of the
// total brought by the top tceil(N·0.2) customers of the contribution order.
// Shares are 0 when the total is not positive. The quadrant report gives the
// customers and contribution per quadrant with the thresholds; the RFM grid
// gives the customers and summed Monetary of each of the 25 (R, F) cells and
// the size of each group.
package domain
