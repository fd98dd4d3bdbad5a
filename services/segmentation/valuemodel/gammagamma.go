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

// GammaGammaParams are the parameters of the Gamma-Gamma spend model: each
// transaction's value is Gamma(shape P, rate ν), and a customer's ν is
// Gamma(shape Q, rate Gamma) across customers. Gamma is in the money unit
// of the MeanSpend it was fitted on.
type GammaGammaParams struct {
	P, Q, Gamma float64
}

// GammaGammaFit is the result of FitGammaGamma.
type GammaGammaFit struct {
	Params GammaGammaParams
	// StdErr holds the asymptotic standard errors of Params.
	StdErr GammaGammaParams
	// LogLikelihood is the maximized log-likelihood of the repeat buyers'
	// mean spends (a density in the money unit of MeanSpend).
	LogLikelihood float64
	// Evaluations counts the passes over the data, as in BGNBDFit.
	Evaluations int
	Duration    time.Duration
	// Customers is the number of repeat buyers fitted on; Excluded counts
	// repeat buyers left out because their mean spend is not positive.
	Customers, Excluded int
	// WarmRows and WarmEvaluations are as in BGNBDFit.
	WarmRows, WarmEvaluations int
}

// LogLikelihood returns the log density of a repeat buyer's mean spend m̄
// over x transactions:
//
//	ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m̄ + px ln x − (px+q) ln(γ + m̄x)
//
// It is −Inf for a customer without repeat transactions or spend.
func (g GammaGammaParams) LogLikelihood(s Summary) float64 {
	if s.X <= 0 || !(s.MeanSpend > 0) {
		return math.Inf(-1)
	}
	x, m := float64(s.X), s.MeanSpend
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	px := g.P * x
	return lg(px+g.Q) - lg(px) - lg(g.Q) + g.Q*math.Log(g.Gamma) +
		(px-1)*math.Log(m) + px*math.Log(x) - (px+g.Q)*math.Log(g.Gamma+m*x)
}

// ConditionalExpectedSpend returns E[M | x, m̄], the expected value of the
// customer's future transactions:
//
//	p(γ + x·m̄)/(px + q − 1)
//
// a weighted mean of the population mean pγ/(q−1), weight (q−1)/(px+q−1),
// and the customer's observed mean m̄. For x = 0 it is the population
// mean. It is +Inf when q ≤ 1 (the population mean is infinite).
func (g GammaGammaParams) ConditionalExpectedSpend(s Summary) float64 {
	x := float64(s.X)
	m := s.MeanSpend
	if s.X == 0 {
		m = 0
	}
	if g.Q <= 1 {
		return math.Inf(1)
	}
	return g.P * (g.Gamma + x*m) / (g.P*x + g.Q - 1)
}

// ggRows is a sample of repeat buyers compressed to distinct (x, m̄).
type ggRows struct {
	xs   []float64
	xi   []int32
	logx []float64 // per distinct x
	m    []float64
	logm []float64
	w    []float64
}

// every returns every k-th row, weighted to the same total.
func (rows *ggRows) every(k int) ggRows {
	out := ggRows{xs: rows.xs, logx: rows.logx}
	scale := subsample(rows.w, k, func(i int) {
		out.xi = append(out.xi, rows.xi[i])
		out.m = append(out.m, rows.m[i])
		out.logm = append(out.logm, rows.logm[i])
		out.w = append(out.w, rows.w[i])
	})
	for i := range out.w {
		out.w[i] *= scale
	}
	return out
}

func compressGG(data []Summary) ggRows {
	type key struct {
		x int
		m float64
	}
	counts := make(map[key]float64)
	for _, s := range data {
		counts[key{s.X, s.MeanSpend}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.m, b.m))
	})
	var r ggRows
	for _, k := range keys {
		if len(r.xs) == 0 || r.xs[len(r.xs)-1] != float64(k.x) {
			r.xs = append(r.xs, float64(k.x))
			r.logx = append(r.logx, math.Log(float64(k.x)))
		}
		r.xi = append(r.xi, int32(len(r.xs)-1))
		r.m = append(r.m, k.m)
		r.logm = append(r.logm, math.Log(k.m))
		r.w = append(r.w, counts[k])
	}
	return r
}

// nll returns the negative log-likelihood at (p, q, γ) = exp(u) and its
// gradient in u when grad is not nil.
func (rows *ggRows) nll(u, grad []float64, workers int) float64 {
	p, q, gamma := math.Exp(u[0]), math.Exp(u[1]), math.Exp(u[2])
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	psi := mathext.Digamma
	nx := len(rows.xs)
	c := make([]float64, nx)
	var dp1, dq1 []float64
	if grad != nil {
		dp1, dq1 = make([]float64, nx), make([]float64, nx)
	}
	lnGamma := math.Log(gamma)
	for i, x := range rows.xs {
		px := p * x
		c[i] = lg(px+q) - lg(px) - lg(q) + q*lnGamma + px*rows.logx[i]
		if grad != nil {
			dp1[i] = x * (psi(px+q) - psi(px) + rows.logx[i])
			dq1[i] = psi(px+q) - psi(q) + lnGamma
		}
	}
	width := 1
	if grad != nil {
		width = 4
	}
	acc := parallelSum(len(rows.w), workers, width, func(lo, hi int, acc []float64) {
		var ll, gp, gq, gg float64
		for k := lo; k < hi; k++ {
			i := rows.xi[k]
			x, m, w := rows.xs[i], rows.m[k], rows.w[k]
			px := p * x
			lden := math.Log(gamma + m*x)
			ll += w * (c[i] + (px-1)*rows.logm[k] - (px+q)*lden)
			if grad != nil {
				gp += w * (dp1[i] + x*rows.logm[k] - x*lden)
				gq += w * (dq1[i] - lden)
				gg += w * (q/gamma - (px+q)/(gamma+m*x))
			}
		}
		acc[0] += ll
		if grad != nil {
			acc[1] += gp
			acc[2] += gq
			acc[3] += gg
		}
	})
	if grad != nil {
		grad[0] = -p * acc[1]
		grad[1] = -q * acc[2]
		grad[2] = -gamma * acc[3]
	}
	return -acc[0]
}

// FitGammaGamma fits the Gamma-Gamma spend model by maximum likelihood on
// the repeat buyers among data (X > 0); customers without repeat
// transactions carry no spend information and are skipped, and repeat
// buyers with a non-positive MeanSpend are skipped and counted in
// Excluded. Errors are as for FitBGNBD.
func FitGammaGamma(ctx context.Context, data []Summary, opts FitOptions) (GammaGammaFit, error) {
	start := time.Now()
	opts = opts.withDefaults()
	var fit GammaGammaFit
	buyers := make([]Summary, 0, len(data))
	var sumM float64
	for _, s := range data {
		if s.X < 0 || !finite(s.MeanSpend) || s.MeanSpend < 0 {
			return fit, fmt.Errorf("%w: customer %q: x=%d mean spend=%g", ErrInvalidSummary, s.Customer, s.X, s.MeanSpend)
		}
		if s.X == 0 {
			continue
		}
		if s.MeanSpend == 0 {
			fit.Excluded++
			continue
		}
		buyers = append(buyers, s)
		sumM += s.MeanSpend
	}
	fit.Customers = len(buyers)
	if fit.Customers < opts.MinRepeatBuyers {
		return fit, fmt.Errorf("%w: %d repeat buyers with spend, need %d", ErrTooFewRepeatBuyers, fit.Customers, opts.MinRepeatBuyers)
	}
	rows := compressGG(buyers)
	obj := &objective{
		names: []string{"p", "q", "gamma"},
		eval:  func(u, grad []float64) float64 { return rows.nll(u, grad, opts.Workers) },
		n:     float64(len(buyers)),
	}
	// Start at p = q = 2 with γ giving the sample mean spend, pγ/(q−1) = m̄,
	// so the start does not depend on the money unit.
	mean := sumM / float64(len(buyers))
	var warm *objective
	if k := warmStride(len(rows.w)); k > 1 {
		sub := rows.every(k)
		warm = &objective{names: obj.names, n: obj.n, eval: func(u, grad []float64) float64 { return sub.nll(u, grad, opts.Workers) }}
		fit.WarmRows = len(sub.w)
	}
	u, err := minimize(ctx, obj, warm, []float64{math.Ln2, math.Ln2, math.Log(mean / 2)})
	if warm != nil {
		fit.WarmEvaluations = warm.passes
	}
	fit.Evaluations = obj.passes
	if err != nil {
		fit.Duration = time.Since(start)
		return fit, canceled("Gamma-Gamma", err)
	}
	se, err := stdErrors(obj, u)
	fit.Evaluations = obj.passes
	fit.Duration = time.Since(start)
	if err != nil {
		return fit, err
	}
	fit.Params = GammaGammaParams{P: math.Exp(u[0]), Q: math.Exp(u[1]), Gamma: math.Exp(u[2])}
	fit.StdErr = GammaGammaParams{P: se[0], Q: se[1], Gamma: se[2]}
	fit.LogLikelihood = -rows.nll(u, nil, opts.Workers)
	fit.Evaluations++
	fit.Duration = time.Since(start)
	return fit, nil
}
