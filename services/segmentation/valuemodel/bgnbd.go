package valuemodel

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/mathext"
)

// BGNBDParams are the parameters of the BG/NBD model: while alive a customer
// buys at Poisson rate λ ~ Gamma(shape R, rate Alpha), and after each
// purchase drops out with probability p ~ Beta(A, B). Alpha is in the time
// unit of the summaries it was fitted on.
type BGNBDParams struct {
	R, Alpha, A, B float64
}

// BGNBDFit is the result of FitBGNBD.
type BGNBDFit struct {
	Params BGNBDParams
	// StdErr holds the asymptotic standard errors of Params, from the
	// inverse Hessian of the negative log-likelihood.
	StdErr BGNBDParams
	// LogLikelihood is the maximized log-likelihood of the sample.
	LogLikelihood float64
	// Evaluations counts the passes over the data: likelihood evaluations
	// (with or without the gradient) by the optimizer and for the Hessian.
	Evaluations int
	// Duration is the wall time of the fit.
	Duration time.Duration
	// Customers and RepeatBuyers count the sample; Rows is the number of
	// distinct (x, t_x, T) the likelihood is summed over (customers with
	// equal histories share a weighted row).
	Customers, RepeatBuyers, Rows int
	// WarmRows and WarmEvaluations describe the first stage on a subsample
	// of the rows, when the data are wide enough for one (0 otherwise):
	// its rows and its likelihood evaluations, which Evaluations does not
	// count.
	WarmRows, WarmEvaluations int
}

// LogLikelihood returns the log-likelihood of one customer's (x, t_x, T):
//
//	ln L = A₁ + ln(exp(A₂) + δ(x>0)·exp(A₃))
//
// see the package documentation. It is evaluated in log space, so
// customers with hundreds of purchases neither overflow nor underflow.
func (p BGNBDParams) LogLikelihood(s Summary) float64 {
	x := float64(s.X)
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	a1 := lg(p.R+x) - lg(p.R) + p.R*math.Log(p.Alpha) +
		lg(p.A+p.B) + lg(p.B+x) - lg(p.B) - lg(p.A+p.B+x)
	a2 := -(p.R + x) * math.Log(p.Alpha+s.T)
	if s.X == 0 {
		return a1 + a2
	}
	a3 := math.Log(p.A) - math.Log(p.B+x-1) - (p.R+x)*math.Log(p.Alpha+s.TX)
	return a1 + logAddExp(a2, a3)
}

// PAlive returns P(alive | x, t_x, T), the probability that the customer has
// not dropped out by T:
//
//	1 / (1 + δ(x>0)·a/(b+x−1)·((α+T)/(α+t_x))^(r+x))
//
// It is 1 for x = 0: in the BG/NBD model a customer can drop out only just
// after a purchase, and the first purchase is not at risk.
func (p BGNBDParams) PAlive(s Summary) float64 {
	if s.X == 0 {
		return 1
	}
	x := float64(s.X)
	logOdds := math.Log(p.A) - math.Log(p.B+x-1) +
		(p.R+x)*(math.Log(p.Alpha+s.T)-math.Log(p.Alpha+s.TX))
	return 1 / (1 + math.Exp(logOdds))
}

// ExpectedPurchases returns E[X(t)], the expected number of purchases in
// (0, t] of a customer who has just made a first purchase at 0 (not
// counting it):
//
//	(a+b−1)/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))]
//
// It returns NaN if the hypergeometric series does not converge (t beyond
// about 10⁵ times α).
func (p BGNBDParams) ExpectedPurchases(t float64) float64 {
	return p.expected(0, p.Alpha, t)
}

// ConditionalExpectedPurchases returns E[Y(t) | x, t_x, T], the expected
// number of purchases in (T, T+t] of a customer with history (x, t_x, T):
//
//	(a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))] · P(alive)
//
// It returns NaN if the hypergeometric series does not converge.
func (p BGNBDParams) ConditionalExpectedPurchases(s Summary, t float64) float64 {
	return p.expected(s.X, p.Alpha+s.T, t) * p.PAlive(s)
}

// expected returns (a+b+x−1)/(a−1)·[1 − G] with
// G = (1−z)^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z), z = t/(β+t), β = α+T.
// By Euler's transformation G = (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z):
// the large factors (1−z)^(−(r+x)) of the series and (1−z)^(r+x) cancel
// analytically, so customers with many purchases do not overflow, and the
// series has small parameters and converges fast. 1 − G is formed from
// expm1 and the series without its leading 1, so small t keeps precision.
// At a = 1 the formula is 0/0; there the mean of a = 1 ± 1e-6 is used.
func (p BGNBDParams) expected(x int, beta, t float64) float64 {
	if t <= 0 {
		return 0
	}
	if math.IsInf(t, 1) {
		return math.Inf(1)
	}
	f := func(a float64) float64 {
		xf := float64(x)
		c := a + p.B + xf - 1
		z := t / (beta + t)
		s, err := hyp2f1m1(a+p.B-1-p.R, a-1, c, z)
		if err != nil {
			return math.NaN()
		}
		l := (a - 1) * math.Log1p(-z)
		oneMinusG := -math.Expm1(l) - math.Exp(l)*s
		return c / (a - 1) * oneMinusG
	}
	const eps = 1e-6
	if math.Abs(p.A-1) < eps {
		return (f(1-eps) + f(1+eps)) / 2
	}
	return f(p.A)
}

// bgRows is a sample compressed to distinct (x, t_x, T) with weights; rows
// are sorted by x, and xi indexes the distinct x values xs.
type bgRows struct {
	xs    []float64
	xi    []int32
	tx, t []float64
	w     []float64
}

func compressBG(data []Summary) bgRows {
	type key struct {
		x     int
		tx, t float64
	}
	counts := make(map[key]float64, len(data)/4+1)
	for _, s := range data {
		tx := s.TX
		if s.X == 0 {
			tx = 0 // unused by the likelihood; lets equal x = 0 rows merge
		}
		counts[key{s.X, tx, s.T}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.t, b.t), cmp.Compare(a.tx, b.tx))
	})
	var r bgRows
	r.xi = make([]int32, len(keys))
	r.tx = make([]float64, len(keys))
	r.t = make([]float64, len(keys))
	r.w = make([]float64, len(keys))
	for i, k := range keys {
		if len(r.xs) == 0 || r.xs[len(r.xs)-1] != float64(k.x) {
			r.xs = append(r.xs, float64(k.x))
		}
		r.xi[i] = int32(len(r.xs) - 1)
		r.tx[i], r.t[i], r.w[i] = k.tx, k.t, counts[k]
	}
	return r
}

// every returns every k-th row, weighted to the same total.
func (rows *bgRows) every(k int) bgRows {
	var out bgRows
	out.xs = rows.xs
	scale := subsample(rows.w, k, func(i int) {
		out.xi = append(out.xi, rows.xi[i])
		out.tx = append(out.tx, rows.tx[i])
		out.t = append(out.t, rows.t[i])
		out.w = append(out.w, rows.w[i])
	})
	for i := range out.w {
		out.w[i] *= scale
	}
	return out
}

// nll returns the negative log-likelihood of the rows at θ = exp(u),
// u = (ln r, ln α, ln a, ln b), and its gradient in u when grad is not nil.
// The terms that depend on x only are computed once per distinct x.
func (rows *bgRows) nll(u, grad []float64, workers int) float64 {
	r, alpha, a, b := math.Exp(u[0]), math.Exp(u[1]), math.Exp(u[2]), math.Exp(u[3])
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	psi := mathext.Digamma
	nx := len(rows.xs)
	c1 := make([]float64, nx) // A₁
	c3 := make([]float64, nx) // ln a − ln(b+x−1)
	var dr1, da1, db1, db3 []float64
	if grad != nil {
		dr1, da1, db1, db3 = make([]float64, nx), make([]float64, nx), make([]float64, nx), make([]float64, nx)
	}
	lnAlpha := math.Log(alpha)
	base := -lg(r) + r*lnAlpha + lg(a+b) - lg(b)
	for i, x := range rows.xs {
		c1[i] = base + lg(r+x) + lg(b+x) - lg(a+b+x)
		if x > 0 {
			c3[i] = math.Log(a) - math.Log(b+x-1)
		}
		if grad != nil {
			dr1[i] = psi(r+x) - psi(r) + lnAlpha
			da1[i] = psi(a+b) - psi(a+b+x)
			db1[i] = psi(a+b) + psi(b+x) - psi(b) - psi(a+b+x)
			if x > 0 {
				db3[i] = -1 / (b + x - 1)
			}
		}
	}
	width := 1
	if grad != nil {
		width = 5
	}
	acc := parallelSum(len(rows.w), workers, width, func(lo, hi int, acc []float64) {
		var ll, gr, gal, ga, gb float64
		for k := lo; k < hi; k++ {
			i := rows.xi[k]
			x := rows.xs[i]
			w := rows.w[k]
			rx := r + x
			lT := math.Log(alpha + rows.t[k])
			a2 := -rx * lT
			if x == 0 {
				ll += w * (c1[i] + a2)
				if grad != nil {
					gr += w * (dr1[i] - lT)
					gal += w * (r/alpha - rx/(alpha+rows.t[k]))
					ga += w * da1[i]
					gb += w * db1[i]
				}
				continue
			}
			ltx := math.Log(alpha + rows.tx[k])
			a3 := c3[i] - rx*ltx
			// ln(e^a2 + e^a3) and the weight w3 = e^a3/(e^a2 + e^a3).
			var lse, w3 float64
			if a2 >= a3 {
				e := math.Exp(a3 - a2)
				lse, w3 = a2+math.Log1p(e), e/(1+e)
			} else {
				e := math.Exp(a2 - a3)
				lse, w3 = a3+math.Log1p(e), 1/(1+e)
			}
			ll += w * (c1[i] + lse)
			if grad != nil {
				w2 := 1 - w3
				gr += w * (dr1[i] - w2*lT - w3*ltx)
				gal += w * (r/alpha - w2*rx/(alpha+rows.t[k]) - w3*rx/(alpha+rows.tx[k]))
				ga += w * (da1[i] + w3/a)
				gb += w * (db1[i] + w3*db3[i])
			}
		}
		acc[0] += ll
		if grad != nil {
			acc[1] += gr
			acc[2] += gal
			acc[3] += ga
			acc[4] += gb
		}
	})
	if grad != nil {
		// ∂/∂u = θ·∂/∂θ, negated for the negative log-likelihood.
		grad[0] = -r * acc[1]
		grad[1] = -alpha * acc[2]
		grad[2] = -a * acc[3]
		grad[3] = -b * acc[4]
	}
	return -acc[0]
}

// FitBGNBD fits the BG/NBD model to the customers' (X, TX, T) by maximum
// likelihood. The optimizer works on the logarithms of the parameters, so
// they stay positive. It fails with ErrInvalidSummary,
// ErrTooFewCustomers, ErrTooFewRepeatBuyers or ErrNotConverged (wrapped),
// or with the context's error if ctx ends first.
func FitBGNBD(ctx context.Context, data []Summary, opts FitOptions) (BGNBDFit, error) {
	start := time.Now()
	opts = opts.withDefaults()
	var fit BGNBDFit
	var sumX, sumT float64
	for _, s := range data {
		if s.X < 0 || !finite(s.TX) || !finite(s.T) || s.TX < 0 || s.TX > s.T {
			return fit, fmt.Errorf("%w: customer %q: x=%d t_x=%g T=%g", ErrInvalidSummary, s.Customer, s.X, s.TX, s.T)
		}
		if s.X > 0 {
			fit.RepeatBuyers++
		}
		sumX += float64(s.X)
		sumT += s.T
	}
	fit.Customers = len(data)
	if fit.Customers < opts.MinCustomers {
		return fit, fmt.Errorf("%w: %d customers, need %d", ErrTooFewCustomers, fit.Customers, opts.MinCustomers)
	}
	if fit.RepeatBuyers < opts.MinRepeatBuyers {
		return fit, fmt.Errorf("%w: %d repeat buyers, need %d", ErrTooFewRepeatBuyers, fit.RepeatBuyers, opts.MinRepeatBuyers)
	}
	rows := compressBG(data)
	fit.Rows = len(rows.w)
	obj := &objective{
		names: []string{"r", "alpha", "a", "b"},
		eval:  func(u, grad []float64) float64 { return rows.nll(u, grad, opts.Workers) },
		n:     float64(len(data)),
	}
	// Start at r = a = b = 1 with α matching the mean purchase rate r/α to
	// the sample's mean repeat rate.
	alpha0 := math.Max(sumT/sumX, 1e-3)
	var warm *objective
	if k := warmStride(len(rows.w)); k > 1 {
		sub := rows.every(k)
		warm = &objective{names: obj.names, n: obj.n, eval: func(u, grad []float64) float64 { return sub.nll(u, grad, opts.Workers) }}
		fit.WarmRows = len(sub.w)
	}
	u, err := minimize(ctx, obj, warm, []float64{0, math.Log(alpha0), 0, 0})
	if warm != nil {
		fit.WarmEvaluations = warm.passes
	}
	fit.Evaluations = obj.passes
	if err != nil {
		fit.Duration = time.Since(start)
		return fit, canceled("BG/NBD", err)
	}
	se, err := stdErrors(obj, u)
	fit.Evaluations = obj.passes
	fit.Duration = time.Since(start)
	if err != nil {
		return fit, err
	}
	fit.Params = BGNBDParams{R: math.Exp(u[0]), Alpha: math.Exp(u[1]), A: math.Exp(u[2]), B: math.Exp(u[3])}
	fit.StdErr = BGNBDParams{R: se[0], Alpha: se[1], A: se[2], B: se[3]}
	fit.LogLikelihood = -rows.nll(u, nil, opts.Workers)
	fit.Evaluations++
	fit.Duration = time.Since(start)
	return fit, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// logAddExp returns ln(eˣ + eʸ) without overflow.
func logAddExp(x, y float64) float64 {
	if x < y {
		x, y = y, x
	}
	return x + math.Log1p(math.Exp(y-x))
}
