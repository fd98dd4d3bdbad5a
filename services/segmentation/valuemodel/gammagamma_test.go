package valuemodel

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

var cdnowSpend = GammaGammaParams{P: 6.25, Q: 3.74, Gamma: 15.44}

// TestGammaGammaLogLikelihood checks the closed form against its
// definition: given ν, the mean of x Gamma(p, ν) values is Gamma(px, xν);
// ν ~ Gamma(q, γ) is integrated out by quadrature over ν = v/(1−v).
func TestGammaGammaLogLikelihood(t *testing.T) {
	g := cdnowSpend
	for _, s := range []Summary{{X: 1, MeanSpend: 11.77}, {X: 2, MeanSpend: 22.35}, {X: 5, MeanSpend: 80}, {X: 40, MeanSpend: 3}} {
		x, m := float64(s.X), s.MeanSpend
		want := tanhSinh(func(v, vc float64) float64 {
			nu := v / vc
			lf := g.P*x*math.Log(x*nu) + (g.P*x-1)*math.Log(m) - x*nu*m - lgammaT(g.P*x) + // Gamma(m; px, xν)
				g.Q*math.Log(g.Gamma) + (g.Q-1)*math.Log(nu) - g.Gamma*nu - lgammaT(g.Q) // Gamma(ν; q, γ)
			return math.Exp(lf) / (vc * vc)
		})
		if got := g.LogLikelihood(s); math.Abs(got-math.Log(want)) > 1e-9 {
			t.Errorf("%+v: ln f = %.12g, integral %.12g", s, got, math.Log(want))
		}
		// The density integrates to 1 over m̄ ∈ (0, ∞).
		total := tanhSinh(func(v, vc float64) float64 {
			return math.Exp(g.LogLikelihood(Summary{X: s.X, MeanSpend: v / vc})) / (vc * vc)
		})
		if math.Abs(total-1) > 1e-9 {
			t.Errorf("x=%d: density integrates to %.12g", s.X, total)
		}
	}
	if ll := g.LogLikelihood(Summary{X: 0}); !math.IsInf(ll, -1) {
		t.Errorf("x=0: %g", ll)
	}
}

func TestGammaGammaConditionalExpectedSpend(t *testing.T) {
	g := cdnowSpend
	population := g.P * g.Gamma / (g.Q - 1)
	if got := g.ConditionalExpectedSpend(Summary{X: 0, MeanSpend: 99}); math.Abs(got-population) > 1e-12 {
		t.Errorf("x=0: %g, want population mean pγ/(q−1) = %g", got, population)
	}
	for _, s := range []Summary{{X: 1, MeanSpend: 11.77}, {X: 3, MeanSpend: 120}, {X: 200, MeanSpend: 20}} {
		// Posterior of ν is Gamma(q+px, γ+x·m̄); E[p/ν] = p(γ+x·m̄)/(q+px−1),
		// a credibility-weighted mean of the population mean and m̄.
		x := float64(s.X)
		w := (g.Q - 1) / (g.P*x + g.Q - 1)
		want := w*population + (1-w)*s.MeanSpend
		if got := g.ConditionalExpectedSpend(s); relErr(got, want) > 1e-13 {
			t.Errorf("%+v: %g, want %g", s, got, want)
		}
	}
	if got := (GammaGammaParams{P: 1, Q: 0.9, Gamma: 1}).ConditionalExpectedSpend(Summary{}); !math.IsInf(got, 1) {
		t.Errorf("q ≤ 1: %g, want +Inf", got)
	}
}

func TestGammaGammaGradient(t *testing.T) {
	data := syntheticGG(rand.New(rand.NewPCG(9, 10)), cdnowSpend, 2000)
	rows := compressGG(data)
	u := []float64{math.Log(5), math.Log(3), math.Log(20)}
	g := make([]float64, 3)
	rows.nll(u, g, 1)
	for i := range u {
		const h = 1e-6
		up, um := append([]float64(nil), u...), append([]float64(nil), u...)
		up[i] += h
		um[i] -= h
		fd := (rows.nll(up, nil, 1) - rows.nll(um, nil, 1)) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-5*math.Max(1, math.Abs(fd)) {
			t.Errorf("∂/∂u%d: analytic %.9g, finite difference %.9g", i, g[i], fd)
		}
	}
}

func TestFitGammaGamma(t *testing.T) {
	ctx := context.Background()
	data := syntheticGG(rand.New(rand.NewPCG(11, 12)), cdnowSpend, 30000)
	// Money units do not matter: cents give the same p, q and 100·γ.
	for _, scale := range []float64{1, 100} {
		scaled := make([]Summary, len(data))
		for i, s := range data {
			s.MeanSpend *= scale
			scaled[i] = s
		}
		fit, err := FitGammaGamma(ctx, scaled, FitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := fit.Params
		got.Gamma /= scale
		t.Logf("scale %g: %+v, se %+v, %d evaluations", scale, got, fit.StdErr, fit.Evaluations)
		for _, c := range []struct {
			name          string
			got, se, want float64
		}{{"p", got.P, fit.StdErr.P, cdnowSpend.P}, {"q", got.Q, fit.StdErr.Q, cdnowSpend.Q}, {"gamma", got.Gamma, fit.StdErr.Gamma / scale, cdnowSpend.Gamma}} {
			if math.Abs(c.got-c.want) > 4*c.se {
				t.Errorf("%s = %.4g ± %.2g, true %.4g", c.name, c.got, c.se, c.want)
			}
		}
	}
	if _, err := FitGammaGamma(ctx, []Summary{{X: 0}, {X: 1, MeanSpend: 3}}, FitOptions{}); !errors.Is(err, ErrTooFewRepeatBuyers) {
		t.Errorf("one repeat buyer: %v", err)
	}
	if _, err := FitGammaGamma(ctx, []Summary{{X: 1, MeanSpend: -3}}, FitOptions{}); !errors.Is(err, ErrInvalidSummary) {
		t.Errorf("negative spend: %v", err)
	}
	withZero := append([]Summary{{X: 2, MeanSpend: 0}}, data[:100]...)
	if fit, err := FitGammaGamma(ctx, withZero, FitOptions{}); err != nil || fit.Excluded != 1 || fit.Customers != 100 {
		t.Errorf("zero spend: excluded %d, customers %d, %v", fit.Excluded, fit.Customers, err)
	}
}

// syntheticGG simulates repeat buyers: ν ~ Gamma(q, γ), x uniform on 1…6,
// and m̄ the mean of x Gamma(p, ν) transaction values.
func syntheticGG(rng *rand.Rand, g GammaGammaParams, n int) []Summary {
	out := make([]Summary, n)
	for i := range out {
		nu := gammaRand(rng, g.Q) / g.Gamma
		x := 1 + rng.IntN(6)
		var sum float64
		for range x {
			sum += gammaRand(rng, g.P) / nu
		}
		out[i] = Summary{X: x, MeanSpend: sum / float64(x)}
	}
	return out
}
