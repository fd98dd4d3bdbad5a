package valuemodel

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

var cdnowParams = BGNBDParams{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}

// bgDirect is the BG/NBD likelihood of (x, t_x, T) written out in plain
// arithmetic (FHL 2005, eq. 6), with its two terms: the customer is alive
// at T, or dropped out after the last purchase.
func bgDirect(p BGNBDParams, x int, tx, T float64) (alive, dead float64) {
	xf := float64(x)
	beta := func(a, b float64) float64 { return math.Gamma(a) * math.Gamma(b) / math.Gamma(a+b) }
	gr := math.Gamma(p.R+xf) * math.Pow(p.Alpha, p.R) / math.Gamma(p.R)
	alive = beta(p.A, p.B+xf) / beta(p.A, p.B) * gr / math.Pow(p.Alpha+T, p.R+xf)
	if x > 0 {
		dead = beta(p.A+1, p.B+xf-1) / beta(p.A, p.B) * gr / math.Pow(p.Alpha+tx, p.R+xf)
	}
	return alive, dead
}

func TestBGNBDLogLikelihood(t *testing.T) {
	p := cdnowParams
	// x = 0: L = (α/(α+T))^r.
	for _, T := range []float64{0, 1, 38.86} {
		got := p.LogLikelihood(Summary{T: T})
		want := p.R * math.Log(p.Alpha/(p.Alpha+T))
		if math.Abs(got-want) > 1e-13 {
			t.Errorf("x=0 T=%g: ln L = %.15g, want r·ln(α/(α+T)) = %.15g", T, got, want)
		}
	}
	for _, s := range []Summary{{X: 1, TX: 1.71, T: 38.86}, {X: 2, TX: 30.43, T: 38.86}, {X: 7, TX: 20, T: 30}, {X: 120, TX: 35, T: 38}} {
		alive, dead := bgDirect(p, s.X, s.TX, s.T)
		want := math.Log(alive + dead)
		if got := p.LogLikelihood(s); math.Abs(got-want) > 1e-10*math.Abs(want) {
			t.Errorf("%+v: ln L = %.15g, direct %.15g", s, got, want)
		}
	}
	// Hundreds of purchases: the direct form overflows, the log form not.
	// (ln L is a log density of the purchase times, so it may be positive.)
	s := Summary{X: 600, TX: 38, T: 38.5}
	if ll := p.LogLikelihood(s); math.IsNaN(ll) || math.IsInf(ll, 0) {
		t.Errorf("x=600: ln L = %g", ll)
	}
	if pa := p.PAlive(s); !(pa > 0 && pa <= 1) {
		t.Errorf("x=600: P(alive) = %g", pa)
	}
	if e := p.ConditionalExpectedPurchases(s, 10); math.IsNaN(e) || math.IsInf(e, 0) || e <= 0 {
		t.Errorf("x=600: E[Y(10)] = %g", e)
	}
}

func TestBGNBDPAlive(t *testing.T) {
	p := cdnowParams
	if got := p.PAlive(Summary{X: 0, T: 38}); got != 1 {
		t.Errorf("x=0: P(alive) = %g, want 1", got)
	}
	for _, s := range []Summary{{X: 1, TX: 1.71, T: 38.86}, {X: 2, TX: 30.43, T: 38.86}, {X: 10, TX: 5, T: 38}, {X: 3, TX: 38, T: 38}} {
		// Bayes: P(alive | data) = L(data, alive at T) / L(data).
		alive, dead := bgDirect(p, s.X, s.TX, s.T)
		want := alive / (alive + dead)
		if got := p.PAlive(s); math.Abs(got-want) > 1e-12 {
			t.Errorf("%+v: P(alive) = %.15g, want %.15g", s, got, want)
		}
	}
}

// expectedByIntegral is E[Y(t) | alive at T with x purchases] computed by
// integrating the individual-level expectation (1/p)(1 − e^(−λpt)) over
// the posterior given alive, λ ~ Gamma(r+x, α+T) (done in closed form) and
// p ~ Beta(a, b+x) (by quadrature). With x = T = 0 it is E[X(t)].
func expectedByIntegral(p BGNBDParams, x int, T, t float64) float64 {
	xf := float64(x)
	return tanhSinh(func(q, qc float64) float64 {
		f := -math.Expm1((p.R + xf) * (math.Log(p.Alpha+T) - math.Log(p.Alpha+T+q*t)))
		return f / q * betaPDF(q, qc, p.A, p.B+xf)
	})
}

func TestBGNBDExpectedPurchases(t *testing.T) {
	for _, p := range []BGNBDParams{cdnowParams, {R: 2, Alpha: 10, A: 3, B: 5}, {R: 0.5, Alpha: 2, A: 1, B: 4}} {
		for _, tt := range []float64{0.01, 1, 39, 52, 500} {
			got := p.ExpectedPurchases(tt)
			want := expectedByIntegral(p, 0, 0, tt)
			if relErr(got, want) > 1e-9 {
				t.Errorf("%+v: E[X(%g)] = %.12g, integral %.12g", p, tt, got, want)
			}
		}
		// For small t everyone is alive and buys at rate E[λ] = r/α.
		tt := 1e-7
		if got, want := p.ExpectedPurchases(tt), p.R/p.Alpha*tt; relErr(got, want) > 1e-5 {
			t.Errorf("%+v: E[X(%g)] = %.12g, want ≈ rt/α = %.12g", p, tt, got, want)
		}
		if got := p.ExpectedPurchases(0); got != 0 {
			t.Errorf("E[X(0)] = %g", got)
		}
	}
}

func TestBGNBDConditionalExpectedPurchases(t *testing.T) {
	for _, p := range []BGNBDParams{cdnowParams, {R: 2, Alpha: 10, A: 3, B: 5}, {R: 0.5, Alpha: 2, A: 1, B: 4}} {
		for _, s := range []Summary{{X: 0, T: 38.86}, {X: 1, TX: 1.71, T: 38.86}, {X: 2, TX: 30.43, T: 38.86}, {X: 15, TX: 35, T: 37}, {X: 300, TX: 36, T: 37}} {
			for _, tt := range []float64{0.5, 39, 520} {
				got := p.ConditionalExpectedPurchases(s, tt)
				want := p.PAlive(s) * expectedByIntegral(p, s.X, s.T, tt)
				if relErr(got, want) > 1e-8 {
					t.Errorf("%+v %+v: E[Y(%g)] = %.12g, integral %.12g", p, s, tt, got, want)
				}
			}
			// Small t: the alive customer buys at the posterior mean rate (r+x)/(α+T).
			tt := 1e-7
			want := p.PAlive(s) * (p.R + float64(s.X)) / (p.Alpha + s.T) * tt
			if got := p.ConditionalExpectedPurchases(s, tt); relErr(got, want) > 1e-4 {
				t.Errorf("%+v %+v: E[Y(%g)] = %.12g, want ≈ %.12g", p, s, tt, got, want)
			}
		}
		// A new customer's conditional expectation is E[X(t)].
		if a, b := p.ConditionalExpectedPurchases(Summary{}, 39), p.ExpectedPurchases(39); relErr(a, b) > 1e-14 {
			t.Errorf("E[Y(39) | 0,0,0] = %g, E[X(39)] = %g", a, b)
		}
	}
}

// TestBGNBDGradient checks the analytic gradient against central
// differences of the likelihood.
func TestBGNBDGradient(t *testing.T) {
	data := syntheticBG(rand.New(rand.NewPCG(1, 2)), cdnowParams, 3000)
	rows := compressBG(data)
	u := []float64{math.Log(0.3), math.Log(5), math.Log(0.7), math.Log(2)}
	g := make([]float64, 4)
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
	// Splitting the sum across goroutines gives the same answer.
	big := compressBG(syntheticBG(rand.New(rand.NewPCG(3, 4)), cdnowParams, 200000))
	g1, g4 := make([]float64, 4), make([]float64, 4)
	f1, f4 := big.nll(u, g1, 1), big.nll(u, g4, 4)
	if relErr(f4, f1) > 1e-12 {
		t.Errorf("parallel NLL %.15g, serial %.15g", f4, f1)
	}
	for i := range g1 {
		if relErr(g4[i], g1[i]) > 1e-9 {
			t.Errorf("parallel gradient %d: %.15g, serial %.15g", i, g4[i], g1[i])
		}
	}
}

// TestFitBGNBDRecovers fits data simulated from known parameters.
func TestFitBGNBDRecovers(t *testing.T) {
	want := BGNBDParams{R: 0.5, Alpha: 6, A: 0.8, B: 2.5}
	data := syntheticBG(rand.New(rand.NewPCG(5, 6)), want, 40000)
	fit, err := FitBGNBD(context.Background(), data, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit %+v, se %+v, %d rows, %d evaluations, %v", fit.Params, fit.StdErr, fit.Rows, fit.Evaluations, fit.Duration)
	check := func(name string, got, se, want float64) {
		// 4 standard errors, plus 2% for rounding the times to days.
		if math.Abs(got-want) > 4*se+0.02*want {
			t.Errorf("%s = %.4g ± %.2g, true %.4g", name, got, se, want)
		}
	}
	check("r", fit.Params.R, fit.StdErr.R, want.R)
	check("alpha", fit.Params.Alpha, fit.StdErr.Alpha, want.Alpha)
	check("a", fit.Params.A, fit.StdErr.A, want.A)
	check("b", fit.Params.B, fit.StdErr.B, want.B)
}

func TestFitBGNBDErrors(t *testing.T) {
	ctx := context.Background()
	many := syntheticBG(rand.New(rand.NewPCG(7, 8)), cdnowParams, 500)
	noRepeat := make([]Summary, 100)
	for i := range noRepeat {
		noRepeat[i] = Summary{T: float64(30 + i%10)}
	}
	canceledCtx, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		data []Summary
		want error
	}{
		{"empty", ctx, nil, ErrTooFewCustomers},
		{"few", ctx, many[:5], ErrTooFewCustomers},
		{"no repeat buyers", ctx, noRepeat, ErrTooFewRepeatBuyers},
		{"recency after age", ctx, append([]Summary{{X: 1, TX: 5, T: 4}}, many...), ErrInvalidSummary},
		{"negative count", ctx, append([]Summary{{X: -1, T: 4}}, many...), ErrInvalidSummary},
		{"NaN", ctx, append([]Summary{{X: 1, TX: math.NaN(), T: 4}}, many...), ErrInvalidSummary},
		{"canceled", canceledCtx, many, context.Canceled},
	}
	for _, tc := range cases {
		_, err := FitBGNBD(tc.ctx, tc.data, FitOptions{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	// A population where every repeat buyer buys daily and no one drops
	// out pushes b to infinity: not identified.
	var degenerate []Summary
	for i := range 200 {
		if i%2 == 0 {
			degenerate = append(degenerate, Summary{X: 30, TX: 30, T: 30})
		} else {
			degenerate = append(degenerate, Summary{X: 0, T: 30})
		}
	}
	if _, err := FitBGNBD(ctx, degenerate, FitOptions{}); !errors.Is(err, ErrNotConverged) {
		t.Errorf("degenerate data: error %v, want ErrNotConverged", err)
	}
}

// syntheticBG simulates n customers from the BG/NBD model in weeks. Each
// customer's first purchase is on a day uniform over the first 12 weeks of
// a 39-week calibration period; while alive, purchases follow a Poisson
// process with rate λ ~ Gamma(r, α), and after each repeat purchase the
// customer drops out with probability p ~ Beta(a, b) (not at the first
// purchase: the x = 0 likelihood is P(no purchase in (0, T]) = e^(−λT)).
// Times are rounded to the nearest whole day, as Summarize reports them.
func syntheticBG(rng *rand.Rand, p BGNBDParams, n int) []Summary {
	const calibrationDays = 273
	out := make([]Summary, n)
	for i := range out {
		lambda := gammaRand(rng, p.R) / p.Alpha
		drop := betaRand(rng, p.A, p.B)
		birth := rng.IntN(84)
		T := float64(calibrationDays-birth) / 7
		x, last := 0, 0.0
		t := 0.0
		for {
			t += rng.ExpFloat64() / lambda
			if t > T {
				break
			}
			x++
			last = t
			if rng.Float64() < drop {
				break
			}
		}
		out[i] = Summary{X: x, TX: math.Round(last*7) / 7, T: T}
	}
	return out
}

// TestWarmStartFindsTheSameMaximum fits data wide enough for the
// subsampled first stage and again without it: the warm start may only
// save time, not move the estimate.
func TestWarmStartFindsTheSameMaximum(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	data := syntheticBG(rng, cdnowParams, 60_000)
	// Continuous recency makes nearly every customer a row of their own.
	for i := range data {
		if data[i].X > 0 {
			data[i].TX = data[i].T * (0.05 + 0.9*rng.Float64())
		}
	}
	// A smaller subsample than in production, so that the test is quick.
	defer func(v int) { warmRowsMax = v }(warmRowsMax)
	warmRowsMax = 3000
	warm, err := FitBGNBD(context.Background(), data, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if warm.WarmRows == 0 || warm.WarmRows > 2*warmRowsMax || warm.Rows < 5*warmRowsMax {
		t.Fatalf("rows %d, warm-start rows %d: the data should be wide enough for a subsample", warm.Rows, warm.WarmRows)
	}
	warmRowsMax = 1 << 30
	cold, err := FitBGNBD(context.Background(), data, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cold.WarmRows != 0 {
		t.Fatalf("the reference fit used a subsample of %d rows", cold.WarmRows)
	}
	// Both stop where the gradient vanishes to the same tolerance: the
	// estimates agree to a small fraction of their standard errors (a and b
	// lie on a flat ridge here, so that is the meaningful scale).
	for _, c := range [][3]float64{{warm.Params.R, cold.Params.R, cold.StdErr.R}, {warm.Params.Alpha, cold.Params.Alpha, cold.StdErr.Alpha},
		{warm.Params.A, cold.Params.A, cold.StdErr.A}, {warm.Params.B, cold.Params.B, cold.StdErr.B}} {
		if math.Abs(c[0]-c[1]) > 0.01*c[2] {
			t.Fatalf("with the warm start %+v, without %+v (standard errors %+v)", warm.Params, cold.Params, cold.StdErr)
		}
	}
	if math.Abs(warm.LogLikelihood-cold.LogLikelihood) > 1e-6*math.Abs(cold.LogLikelihood) {
		t.Errorf("log-likelihood %f with the warm start, %f without", warm.LogLikelihood, cold.LogLikelihood)
	}
	t.Logf("%d rows: %d full evaluations after %d on %d rows, against %d without (%v vs %v)",
		warm.Rows, warm.Evaluations, warm.WarmEvaluations, warm.WarmRows, cold.Evaluations, warm.Duration, cold.Duration)
}
