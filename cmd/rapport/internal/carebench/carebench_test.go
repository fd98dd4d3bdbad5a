package carebench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every phase on a few thousand timers, so the benchmark
// keeps working; lateness is reported, not checked against the target.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a care.db and fires timers on the real clock for seconds")
	}
	cfg := Config{Timers: 3000, Rate: 200, Steady: 2 * time.Second, Downtime: 3 * time.Second, Tail: time.Second,
		Lead: 500 * time.Millisecond, Horizon: time.Hour, Batch: 500, CatchupTimeout: time.Minute, DataDir: t.TempDir()}
	rep, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.PendingPlanTimers != cfg.Timers || rep.Load.DBBytes == 0 {
		t.Errorf("load = %+v, want %d pending plan timers", rep.Load, cfg.Timers)
	}
	s := rep.Steady
	if s == nil || s.Lateness.Count != 400 || s.Fired < 400 || s.Lateness.P50 < 0 || s.Lateness.P99 < s.Lateness.P50 {
		t.Fatalf("steady = %+v, want 400 timers fired with 0 ≤ p50 ≤ p99", s)
	}
	k := rep.Catchup
	if k == nil || !k.Complete || k.Overdue != 600 || k.OverdueSeconds <= 0 || k.Tail.Count != 200 || s.Fired+k.Fired != 1200 {
		t.Fatalf("catchup = %+v, want 600 overdue and 200 more fired", k)
	}
	if rep.PendingPlanTimers != cfg.Timers-1200 || rep.PendingTaskTimers != 1200 {
		t.Errorf("pending plan / task timers = %d / %d, want %d / 1200", rep.PendingPlanTimers, rep.PendingTaskTimers, cfg.Timers-1200)
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"steady lateness p99", "catch-up", "peak RSS", "care.db size"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if !strings.Contains(js.String(), `"p99_seconds"`) {
		t.Errorf("JSON lacks p99_seconds:\n%s", js.String())
	}
}

func TestValidateRefusesWindowsLargerThanTheTimers(t *testing.T) {
	cfg := Config{Timers: 100, Rate: 10, Steady: 10 * time.Second, Downtime: time.Second, Horizon: time.Hour, Batch: 1, CatchupTimeout: time.Minute}
	if err := cfg.Validate(); err == nil {
		t.Error("110 timers in the windows of 100 validated")
	}
}
