package valuemodel

import (
	"math"
	"math/rand/v2"
	"time"
)

// Simulation describes customers drawn from the models themselves, for
// benchmarks and tests that need data whose true parameters are known.
type Simulation struct {
	BG BGNBDParams
	GG GammaGammaParams
	// Unit is the unit the parameters are in.
	Unit Unit
	// Start and AcquisitionDays: first purchases fall uniformly in
	// [Start, Start + AcquisitionDays). End is when observation stops.
	Start           time.Time
	AcquisitionDays float64
	End             time.Time
	// MinorPerMajor scales the Gamma-Gamma spend (major units) to the
	// minor units of Purchase.Amount.
	MinorPerMajor float64
}

// Customer draws one customer's purchases up to End, in time order:
// λ ~ Gamma(r, α) and p ~ Beta(a, b); a first purchase, then purchases at
// rate λ while alive, dropping out after each repeat purchase with
// probability p. Each transaction's value is Gamma(p_GG, ν) with
// ν ~ Gamma(q, γ) per customer. Purchases may fall on one day.
func (s Simulation) Customer(rng *rand.Rand, id string) []Purchase {
	day := float64(24 * time.Hour)
	per := s.Unit.days() * day
	lambda := gammaRand(rng, s.BG.R) / s.BG.Alpha
	drop := betaRand(rng, s.BG.A, s.BG.B)
	nu := gammaRand(rng, s.GG.Q) / s.GG.Gamma
	birth := s.Start.Add(time.Duration(rng.Float64() * s.AcquisitionDays * day))
	spend := func() int64 { return int64(math.Round(gammaRand(rng, s.GG.P) / nu * s.MinorPerMajor)) }
	out := []Purchase{{Customer: id, At: birth, Amount: spend()}}
	horizon := float64(s.End.Sub(birth)) / per
	for t := 0.0; ; {
		t += rng.ExpFloat64() / lambda
		if t > horizon {
			return out
		}
		out = append(out, Purchase{Customer: id, At: birth.Add(time.Duration(t * per)), Amount: spend()})
		if rng.Float64() < drop {
			return out
		}
	}
}

// GammaRand draws from Gamma(shape k, rate 1) by Marsaglia and Tsang,
// boosted for k < 1.
func GammaRand(rng *rand.Rand, k float64) float64 { return gammaRand(rng, k) }

func gammaRand(rng *rand.Rand, k float64) float64 {
	if k < 1 {
		return gammaRand(rng, k+1) * math.Pow(rng.Float64(), 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

func betaRand(rng *rand.Rand, a, b float64) float64 {
	x, y := gammaRand(rng, a), gammaRand(rng, b)
	return x / (x + y)
}
