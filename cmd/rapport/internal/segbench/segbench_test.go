package segbench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"rapport.dev/services/segmentation/domain"
)

// TestSmoke runs every phase but postgres on a small data set, so the
// benchmark keeps working; the numbers are not checked against targets.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the services and loads a data set")
	}
	cfg := Config{Customers: 2000, Purchases: 20000, Segments: 20, Phases: []string{PhaseFreshness, PhaseReeval, PhaseValueModel},
		DataDir: t.TempDir(), Seed: 1, Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Probes: 20, Rate: 200}
	rep, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Freshness
	if f == nil || f.Timeouts != 0 || f.P50 <= 0 || f.P99 < f.P50 {
		t.Errorf("freshness = %+v, want every probe seen with p50 ≤ p99", f)
	}
	e := rep.Reeval
	if e == nil || e.Cold.Entered == 0 || e.Cold.ScoresChanged == 0 || e.Cold.Ranked == 0 || e.Cold.TimersChanged == 0 {
		t.Fatalf("reeval = %+v, want memberships, scores and timers written by the first evaluation", e)
	}
	if e.Warm.Entered+e.Warm.Left > e.Cold.Entered/10 {
		t.Errorf("warm pass changed %d memberships, the cold one %d: an hour should change few", e.Warm.Entered+e.Warm.Left, e.Cold.Entered)
	}
	if e.CreateMembers == 0 || e.Create <= 0 {
		t.Errorf("the segment created: %d members in %v s, want some (%s)", e.CreateMembers, e.Create, CreatedRule)
	}
	v := rep.ValueModel
	if v == nil || v.Error != "" || v.Fitted != cfg.Customers || v.BGEvaluations == 0 || v.Fit <= 0 || v.Rescore.Ranked == 0 {
		t.Fatalf("valuemodel = %+v, want a fit of both models and a re-evaluation ranking on CLV", v)
	}
	if !v.Recovered() {
		t.Errorf("fitted %+v and %+v from data drawn with %+v and %+v", v.BG, v.GG, v.TrueBG, v.TrueGG)
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"freshness p99", "full re-evaluation, warm", "peak RSS", "value model fit", "ranking on CLV"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if !strings.Contains(js.String(), `"p99_seconds"`) {
		t.Errorf("JSON lacks p99_seconds:\n%s", js.String())
	}
}

// TestDatasetIsDeterministicAndExact checks the generator: the requested
// number of purchases, the same customer for the same seed and index.
func TestDatasetIsDeterministicAndExact(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d := NewDataset(5000, 50000, 7, now)
	total := 0
	for i := range d.Len() {
		total += len(d.customer(i).purchases)
	}
	if total != 50000 {
		t.Errorf("purchases = %d, want 50000", total)
	}
	a, b := NewDataset(5000, 50000, 7, now).customer(42), d.customer(42)
	if len(a.purchases) != len(b.purchases) || a.profile.GetRegion().GetCity() != b.profile.GetRegion().GetCity() ||
		(len(a.purchases) > 0 && a.purchases[0] != b.purchases[0]) {
		t.Errorf("customer 42 differs between two data sets of one seed")
	}
}

// TestRulesHaveANativeForm keeps the benchmark's rules, as its segments
// write them (two laps), within what the rules' native form covers: a rule
// that fell back to CEL would measure CEL. The domain package's own copy of
// the list, which its differential test and benchmarks use, cannot import
// this one.
func TestRulesHaveANativeForm(t *testing.T) {
	env, err := domain.NewRuleEnv()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 * len(Rules) {
		r, err := env.Compile(rule(i))
		if err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
		if !r.Native() {
			t.Errorf("rule %d has no native form: %s", i, rule(i))
		}
	}
}
