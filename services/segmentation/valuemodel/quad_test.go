package valuemodel

import "math"

// tanhSinh integrates f over (0, 1) by the double-exponential rule, which
// copes with integrable algebraic singularities at both ends. f receives x
// and 1−x, the latter computed without cancellation near 1.
func tanhSinh(f func(x, xc float64) float64) float64 {
	const h = 1.0 / 64
	var sum float64
	for k := -320; k <= 320; k++ {
		u := float64(k) * h
		s := math.Pi / 2 * math.Sinh(u)
		x := 1 / (1 + math.Exp(-2*s))
		xc := 1 / (1 + math.Exp(2*s))
		if x == 0 || xc == 0 {
			continue
		}
		w := math.Pi * math.Cosh(u) * x * xc
		sum += f(x, xc) * w
	}
	return sum * h
}

func lgammaT(v float64) float64 { l, _ := math.Lgamma(v); return l }

func lbeta(a, b float64) float64 { return lgammaT(a) + lgammaT(b) - lgammaT(a+b) }

// betaPDF is the Beta(a, b) density at x (with xc = 1−x).
func betaPDF(x, xc, a, b float64) float64 {
	return math.Exp((a-1)*math.Log(x) + (b-1)*math.Log(xc) - lbeta(a, b))
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}
