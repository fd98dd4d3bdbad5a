package valuemodel

import (
	"math"
	"testing"
)

func TestCLV(t *testing.T) {
	bg, gg := cdnowParams, cdnowSpend
	s := Summary{X: 2, TX: 30.43, T: 38.86, MeanSpend: 22.35}
	spend := gg.ConditionalExpectedSpend(s)

	// Without discounting the periods telescope to E[Y(H)]·E[M].
	got := CLV(bg, gg, s, CLVOptions{Horizon: 52, Period: 4.33})
	want := spend * bg.ConditionalExpectedPurchases(s, 52)
	if relErr(got, want) > 1e-12 {
		t.Errorf("undiscounted CLV %g, want %g", got, want)
	}
	// Two periods by hand, with a margin.
	opts := CLVOptions{Horizon: 10, Period: 6, DiscountRate: 0.05, Margin: 0.3}
	e1, e2 := bg.ConditionalExpectedPurchases(s, 6), bg.ConditionalExpectedPurchases(s, 10)
	want = 0.3 * spend * (e1/1.05 + (e2-e1)/(1.05*1.05))
	if got := CLV(bg, gg, s, opts); relErr(got, want) > 1e-12 {
		t.Errorf("two-period CLV %g, want %g", got, want)
	}
	// Discounting lowers the value; a longer horizon raises it.
	a := CLV(bg, gg, s, CLVOptions{Horizon: 104, Period: 4.33, DiscountRate: 0.01})
	b := CLV(bg, gg, s, CLVOptions{Horizon: 104, Period: 4.33})
	c := CLV(bg, gg, s, CLVOptions{Horizon: 208, Period: 4.33, DiscountRate: 0.01})
	if !(a < b && a < c) {
		t.Errorf("discounted %g, undiscounted %g, longer %g", a, b, c)
	}
	if got := CLV(bg, gg, s, CLVOptions{}); got != 0 {
		t.Errorf("zero horizon: %g", got)
	}
	if got := CLV(bg, gg, s, CLVOptions{Horizon: 5}); !math.IsNaN(got) {
		t.Errorf("zero period: %g", got)
	}
}
