package valuemodel

import (
	"errors"
	"math"
)

// errHyp2F1 reports a Gaussian hypergeometric series that did not converge
// within maxHypTerms terms (an argument too close to 1).
var errHyp2F1 = errors.New("valuemodel: hypergeometric series did not converge")

const maxHypTerms = 2_000_000

// hyp2f1m1 returns ₂F₁(a, b; c; z) − 1 = Σ_{n≥1} (a)ₙ(b)ₙ/((c)ₙ n!) zⁿ for
// 0 ≤ z < 1 and c not a non-positive integer, summed directly. Returning the sum without its
// leading 1 keeps full relative precision when the sum is small (small z).
//
// The terms satisfy t_{n+1} = t_n·ρ_n with ρ_n = (a+n)(b+n)z/((c+n)(n+1)),
// and ρ_n → z. Once past the largest term (ρ_n < 1), every later ratio is at
// most ρ* = max(ρ_n, z) when the ratios decrease towards z, and at most z
// when they increase towards it, so the remainder after t_{n+1} is bounded
// by |t_{n+1}|/(1−ρ*). Summation stops when that bound is below 1e-17 of
// the sum.
func hyp2f1m1(a, b, c, z float64) (float64, error) {
	if z == 0 {
		return 0, nil
	}
	if !(z > 0 && z < 1) || (c <= 0 && c == math.Floor(c)) {
		return math.NaN(), errHyp2F1
	}
	term, sum := 1.0, 0.0
	for n := 0; n < maxHypTerms; n++ {
		fn := float64(n)
		rho := (a + fn) * (b + fn) / ((c + fn) * (fn + 1)) * z
		term *= rho
		sum += term
		if term == 0 {
			return sum, nil // a or b is a non-positive integer: a polynomial
		}
		next := math.Abs((a+fn+1)*(b+fn+1)/((c+fn+1)*(fn+2))) * z
		if next < 1 {
			bound := math.Max(next, z)
			if math.Abs(term)*next/(1-bound) <= 1e-17*math.Abs(sum) {
				return sum, nil
			}
		}
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			break
		}
	}
	return math.NaN(), errHyp2F1
}

// hyp2f1 returns the Gaussian hypergeometric function ₂F₁(a, b; c; z) for
// z < 1 and c not a non-positive integer.
//
//   - z < 0 is mapped into (0, 1) by Pfaff's transformation
//     ₂F₁(a, b; c; z) = (1−z)^(−a) ₂F₁(a, c−b; c; z/(z−1)) (DLMF 15.8.1);
//   - when a + b − c > 0 the direct series grows like n^(a+b−c−1) zⁿ and its
//     sum like (1−z)^(c−a−b); Euler's transformation
//     ₂F₁(a, b; c; z) = (1−z)^(c−a−b) ₂F₁(c−a, c−b; c; z) (DLMF 15.8.1)
//     gives a series whose terms decay like n^(c−a−b−1) zⁿ instead.
func hyp2f1(a, b, c, z float64) (float64, error) {
	switch {
	case z < 0:
		w := z / (z - 1)
		s, err := hyp2f1(a, c-b, c, w)
		return math.Pow(1-z, -a) * s, err
	case a+b-c > 0:
		s, err := hyp2f1m1(c-a, c-b, c, z)
		return math.Exp((c-a-b)*math.Log1p(-z)) * (1 + s), err
	default:
		s, err := hyp2f1m1(a, b, c, z)
		return 1 + s, err
	}
}
