package money

import "testing"

func TestExponent(t *testing.T) {
	for _, c := range []struct {
		currency string
		exp      int
		per      float64
	}{{"USD", 2, 100}, {"GBP", 2, 100}, {"CNY", 2, 100}, {"", 2, 100},
		{"JPY", 0, 1}, {"KRW", 0, 1}, {"BHD", 3, 1000}, {"KWD", 3, 1000}, {"OMR", 3, 1000}, {"JOD", 3, 1000}, {"TND", 3, 1000}} {
		if got := Exponent(c.currency); got != c.exp {
			t.Errorf("Exponent(%q) = %d, want %d", c.currency, got, c.exp)
		}
		if got := MinorPerMajor(c.currency); got != c.per {
			t.Errorf("MinorPerMajor(%q) = %g, want %g", c.currency, got, c.per)
		}
	}
}
