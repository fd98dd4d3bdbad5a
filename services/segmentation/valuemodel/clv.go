package valuemodel

import "math"

// CLVOptions define a customer-lifetime-value calculation. Times are in the
// unit of the BG/NBD fit.
type CLVOptions struct {
	// Horizon is the length of the forecast window (T, T+Horizon].
	Horizon float64
	// Period is the length of one discounting period, e.g. 4.345 weeks for
	// a month; the last period is cut at Horizon.
	Period float64
	// DiscountRate is the discount rate per period (0.01 = 1% a period).
	DiscountRate float64
	// Margin is the fraction of spend that is profit; 0 means 1 (revenue).
	Margin float64
}

// CLV returns the discounted expected value of the customer's purchases over
// opts.Horizon, in the money unit of the spend model:
//
//	CLV = margin · E[M | x, m̄] · Σ_{k=1..K} (E[Y(t_k)] − E[Y(t_{k−1})]) / (1+d)^k
//
// where t_k = min(k·Period, Horizon), K = ⌈Horizon/Period⌉, E[Y(t)] is the
// BG/NBD conditional expectation given (x, t_x, T) and E[M | x, m̄] the
// Gamma-Gamma expected spend. The purchases expected in period k are
// discounted as if they happened at its end. It returns 0 for a
// non-positive horizon and NaN for a non-positive period.
func CLV(bg BGNBDParams, gg GammaGammaParams, s Summary, opts CLVOptions) float64 {
	if opts.Horizon <= 0 {
		return 0
	}
	if !(opts.Period > 0) {
		return math.NaN()
	}
	margin := opts.Margin
	if margin == 0 {
		margin = 1
	}
	var total, prev float64
	for k := 1; ; k++ {
		t := math.Min(float64(k)*opts.Period, opts.Horizon)
		e := bg.ConditionalExpectedPurchases(s, t)
		total += (e - prev) / math.Pow(1+opts.DiscountRate, float64(k))
		prev = e
		if t >= opts.Horizon {
			break
		}
	}
	return margin * gg.ConditionalExpectedSpend(s) * total
}
