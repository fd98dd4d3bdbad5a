package valuemodel

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2024, 1, d, h, 0, 0, 0, time.UTC) }
	asOf := day(29, 12) // 2024-01-29 12:00
	east := time.FixedZone("UTC+9", 9*3600)
	purchases := []Purchase{
		{"b", day(1, 10), 1000},
		{"a", day(8, 9), 500},
		{"a", day(1, 9), 700},
		{"a", day(8, 20), 300}, // same UTC day as the 09:00 one: one transaction of 800
		{"a", day(15, 0), 1200},
		{"a", day(29, 13), 9999}, // after asOf
		// 2024-01-23 02:00 in UTC+9 is 2024-01-22 17:00 UTC: day 22.
		{"c", time.Date(2024, 1, 23, 2, 0, 0, 0, east), 100},
		{"c", day(22, 23), 50},
		{"d", day(30, 0), 10}, // only after asOf: left out
	}
	want := []Summary{
		{Customer: "a", X: 2, TX: 14, T: 28, MeanSpend: 1000}, // (800+1200)/2
		{Customer: "b", X: 0, TX: 0, T: 28},
		{Customer: "c", X: 0, TX: 0, T: 7},
	}
	got := Summarize(purchases, asOf, Days)
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
	weeks := Summarize(purchases, asOf, Weeks)
	if w := weeks[0]; w.TX != 2 || w.T != 4 || math.Abs(weeks[2].T-1) > 0 {
		t.Errorf("weeks: %+v", weeks)
	}
	// At exactly asOf a purchase counts.
	if s := Summarize([]Purchase{{"a", day(1, 0), 1}, {"a", asOf, 2}}, asOf, Days); s[0].X != 1 || s[0].MeanSpend != 2 {
		t.Errorf("purchase at asOf: %+v", s)
	}
}
