package valuemodel

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestSummarizeCustomerMatchesSummarize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	asOf := base.Add(200*24*time.Hour + 13*time.Hour)
	for i := range 500 {
		var ps []Purchase
		at := base.Add(time.Duration(rng.IntN(48)) * time.Hour)
		for range rng.IntN(12) {
			ps = append(ps, Purchase{Customer: "c", At: at, Amount: int64(1 + rng.IntN(5000))})
			at = at.Add(time.Duration(rng.IntN(24*40)) * time.Hour)
		}
		for _, unit := range []Unit{Days, Weeks} {
			want := Summarize(ps, asOf, unit)
			got, ok := SummarizeCustomer(ps, asOf, unit)
			if ok != (len(want) == 1) {
				t.Fatalf("case %d: ok = %v, Summarize gave %d summaries", i, ok, len(want))
			}
			if ok && got != want[0] {
				t.Fatalf("case %d %v: SummarizeCustomer = %+v, Summarize = %+v", i, unit, got, want[0])
			}
		}
	}
}

func TestHoldoutTransactions(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2024, 3, d, h, 0, 0, 0, time.UTC) }
	asOf := day(10, 12)
	ps := []Purchase{
		{At: day(1, 9)},
		{At: day(10, 9)},                    // calibration
		{At: day(10, 15)},                   // after asOf, but the calibration day's transaction
		{At: day(11, 8)}, {At: day(11, 20)}, // one transaction
		{At: day(15, 0)},
		{At: day(20, 0)}, // == end: counts
		{At: day(21, 0)}, // after end
	}
	if got := HoldoutTransactions(ps, asOf, day(20, 0)); got != 3 {
		t.Errorf("HoldoutTransactions = %d, want 3 (days 11, 15, 20)", got)
	}
	if got := HoldoutTransactions(ps[:1], asOf, day(20, 0)); got != 0 {
		t.Errorf("without later purchases = %d, want 0", got)
	}
	if got := PeriodsBetween(day(1, 23), day(15, 1), Weeks); got != 2 {
		t.Errorf("PeriodsBetween = %g weeks, want 2", got)
	}
}

func TestPActive(t *testing.T) {
	p := cdnowParams
	// Repeat buyers: the BG/NBD P(alive).
	s := Summary{X: 2, TX: 30.43, T: 38.86}
	if got, want := p.PActive(s), p.PAlive(s); got != want {
		t.Errorf("repeat buyer: PActive = %g, PAlive = %g", got, want)
	}
	// One-time buyers: MBG/NBD, written out: P(alive) = L(alive)/L, with
	// L(alive) = B(a, b+1)/B(a, b)·(α/(α+T))^r the chance of surviving the
	// first purchase and buying nothing since, and L = that plus
	// B(a+1, b)/B(a, b) the chance of dropping out at once.
	for _, T := range []float64{0, 1, 38.86, 500} {
		beta := func(a, b float64) float64 { return math.Gamma(a) * math.Gamma(b) / math.Gamma(a+b) }
		alive := beta(p.A, p.B+1) / beta(p.A, p.B) * math.Pow(p.Alpha/(p.Alpha+T), p.R)
		dead := beta(p.A+1, p.B) / beta(p.A, p.B)
		want := alive / (alive + dead)
		if got := p.PActive(Summary{T: T}); math.Abs(got-want) > 1e-12 {
			t.Errorf("x=0 T=%g: PActive = %.15g, want %.15g", T, got, want)
		}
	}
	if young, old := p.PActive(Summary{T: 1}), p.PActive(Summary{T: 100}); !(young > old) {
		t.Errorf("PActive should fall with age: T=1 %g, T=100 %g", young, old)
	}
}

// TestSimulationRecoversItsParameters fits customers drawn by Simulation:
// the fits find the parameters they were drawn with.
func TestSimulationRecoversItsParameters(t *testing.T) {
	sim := Simulation{BG: cdnowParams, GG: GammaGammaParams{P: 6.25, Q: 3.74, Gamma: 15.44}, Unit: Weeks,
		Start: time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC), AcquisitionDays: 84,
		End: time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC), MinorPerMajor: 100}
	rng := rand.New(rand.NewPCG(3, 4))
	var data []Summary
	for i := range 30_000 {
		ps := sim.Customer(rng, "c")
		for j := 1; j < len(ps); j++ {
			if ps[j].At.Before(ps[j-1].At) {
				t.Fatalf("customer %d: purchases out of order", i)
			}
		}
		s, ok := SummarizeCustomer(ps, sim.End, Weeks)
		if !ok {
			t.Fatalf("customer %d has no purchase", i)
		}
		s.MeanSpend /= 100
		data = append(data, s)
	}
	bg, err := FitBGNBD(context.Background(), data, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gg, err := FitGammaGamma(context.Background(), data, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Four standard errors, plus a little for same-day purchases merging
	// (which raises α by about 6% at these parameters).
	for _, c := range [][3]float64{{bg.Params.R, sim.BG.R, bg.StdErr.R}, {bg.Params.Alpha, sim.BG.Alpha, bg.StdErr.Alpha},
		{bg.Params.A, sim.BG.A, bg.StdErr.A}, {bg.Params.B, sim.BG.B, bg.StdErr.B},
		{gg.Params.P, sim.GG.P, gg.StdErr.P}, {gg.Params.Q, sim.GG.Q, gg.StdErr.Q}, {gg.Params.Gamma, sim.GG.Gamma, gg.StdErr.Gamma}} {
		if math.Abs(c[0]-c[1]) > 4*c[2]+0.08*c[1] {
			t.Fatalf("fitted %+v and %+v, drawn with %+v and %+v", bg.Params, gg.Params, sim.BG, sim.GG)
		}
	}
}
