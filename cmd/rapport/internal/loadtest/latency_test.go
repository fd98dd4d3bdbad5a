package loadtest

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		ds := make([]time.Duration, len(ns))
		for i, n := range ns {
			ds[i] = time.Duration(n) * time.Millisecond
		}
		return ds
	}
	oneToHundred := make([]int, 100)
	for i := range oneToHundred {
		oneToHundred[len(oneToHundred)-1-i] = i + 1 // reversed: NewLatencies must sort
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", ms(7), 50, 7 * time.Millisecond},
		{"single p99", ms(7), 99, 7 * time.Millisecond},
		{"p0 is the minimum", ms(oneToHundred...), 0, 1 * time.Millisecond},
		{"p50 of 1..100", ms(oneToHundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(oneToHundred...), 99, 99 * time.Millisecond},
		{"p99.5 rounds up", ms(oneToHundred...), 99.5, 100 * time.Millisecond},
		{"p100 is the maximum", ms(oneToHundred...), 100, 100 * time.Millisecond},
		{"above 100 clamps", ms(oneToHundred...), 120, 100 * time.Millisecond},
		{"p50 of an even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p51 of four is the upper middle", ms(4, 1, 3, 2), 51, 3 * time.Millisecond},
		{"p99 of ten is the maximum", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), 99, time.Second},
		{"p90 of ten ignores the outlier", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewLatencies(tt.in).Percentile(tt.p); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestMean(t *testing.T) {
	if got := NewLatencies(nil).Mean(); got != 0 {
		t.Errorf("Mean of nothing = %v, want 0", got)
	}
	l := NewLatencies([]time.Duration{time.Millisecond, 3 * time.Millisecond})
	if got, want := l.Mean(), 2*time.Millisecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
	if l.Len() != 2 {
		t.Errorf("Len = %d, want 2", l.Len())
	}
}
