package valuemodel

import (
	"math"
	"testing"
)

// TestHyp2F1EulerIntegral compares the series with Euler's integral
// ₂F₁(a,b;c;z) = Γ(c)/(Γ(b)Γ(c−b)) ∫₀¹ t^(b−1) (1−t)^(c−b−1) (1−zt)^(−a) dt,
// c > b > 0, evaluated by quadrature.
func TestHyp2F1EulerIntegral(t *testing.T) {
	cases := []struct{ a, b, c, z float64 }{
		{0.5, 0.7, 2.1, 0.3},
		{1.2, 2.5, 3.0, 0.9},   // a+b−c > 0: Euler-transformed branch
		{3.3, 1.5, 2.0, 0.95},  // strongly divergent at z → 1
		{0.243, 0.5, 2.2, 0.6}, // small parameters, singular integrand
		{25.2, 26.4, 27.2, 0.7},
		{-0.2, 1.3, 2.0, 0.99},
		{1.5, 0.5, 2.5, -3}, // Pfaff branch
		{0.8, 2.0, 4.0, 0.999},
	}
	for _, tc := range cases {
		got, err := hyp2f1(tc.a, tc.b, tc.c, tc.z)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		integral := tanhSinh(func(x, xc float64) float64 {
			return math.Exp((tc.b-1)*math.Log(x) + (tc.c-tc.b-1)*math.Log(xc) - tc.a*math.Log1p(-tc.z*x))
		})
		want := integral / math.Exp(lbeta(tc.b, tc.c-tc.b))
		if relErr(got, want) > 1e-10 {
			t.Errorf("2F1(%g, %g; %g; %g) = %.15g, Euler integral %.15g", tc.a, tc.b, tc.c, tc.z, got, want)
		}
	}
}

func TestHyp2F1ClosedForms(t *testing.T) {
	for _, z := range []float64{1e-12, 1e-3, 0.2, 0.5, 0.9, 0.999, -0.5, -10} {
		got, err := hyp2f1(1, 1, 2, z)
		if want := -math.Log1p(-z) / z; err != nil || relErr(got, want) > 1e-12 {
			t.Errorf("2F1(1,1;2;%g) = %.15g (%v), want −ln(1−z)/z = %.15g", z, got, err, want)
		}
		got, err = hyp2f1(0.7, 2.3, 2.3, z)
		if want := math.Pow(1-z, -0.7); err != nil || relErr(got, want) > 1e-12 {
			t.Errorf("2F1(0.7,b;b;%g) = %.15g (%v), want (1−z)^−a = %.15g", z, got, err, want)
		}
	}
	// Small z: ₂F₁ − 1 ≈ (ab/c)·z(1 + (a+1)(b+1)z/(2(c+1))), kept to full
	// relative precision by hyp2f1m1.
	a, b, c, z := 0.3, 1.7, 2.2, 1e-9
	got, err := hyp2f1m1(a, b, c, z)
	want := a * b / c * z * (1 + (a+1)*(b+1)/(2*(c+1))*z)
	if err != nil || relErr(got, want) > 1e-14 {
		t.Errorf("2F1−1 at z=%g: %.17g (%v), want %.17g", z, got, err, want)
	}
	// Polynomial case: a = −2.
	got, err = hyp2f1(-2, 1.5, 3, 0.4)
	want = 1 + (-2*1.5/3)*0.4 + (-2*-1*1.5*2.5)/(3*4*2)*0.16
	if err != nil || relErr(got, want) > 1e-14 {
		t.Errorf("2F1(−2, 1.5; 3; 0.4) = %.17g, want %.17g", got, want)
	}
	if _, err := hyp2f1m1(1, 1, 2, 1); err == nil {
		t.Error("z = 1 accepted")
	}
}
