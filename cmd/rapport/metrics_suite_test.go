package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// scrape reads a /metrics endpoint.
func scrape(t *testing.T, url string) []sample {
	t.Helper()
	out, err := scrapeMetrics(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSuiteMetrics scrapes the /metrics endpoint of a suite that recorded
// a purchase, reconciled the programme and fired a care timer late: the
// RPC and HTTP metrics and every product health signal are there, named
// by component.
func TestSuiteMetrics(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // 18:00 in Shanghai
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--fake-clock", t0.Format(time.RFC3339),
		"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	metrics := p.urls["metrics"]
	if !strings.HasSuffix(metrics, "/metrics") {
		t.Fatalf("serve printed no metrics URL: %v", p.urls)
	}
	api := p.rest("acme")
	tasks := watchTasks(t, p.grpcAddr("care"), p.ctx("acme"))
	api.must("POST", "/v1/customers/c-1/events", purchaseScenario(api, t0), 200)
	if rec := api.must("POST", "/v1/loyalty/programs/club:reconcile", map[string]any{}, 200); rec["differences"] != nil {
		t.Fatalf("reconciliation: %v", rec)
	}
	// The survey is due three days later at 10:00 in Shanghai; the clock
	// gets there a minute late.
	surveyDue := time.Date(2026, 3, 5, 2, 0, 0, 0, time.UTC)
	api.must("POST", "/v1/testing/clock", map[string]any{"time": surveyDue.Add(time.Minute).Format(time.RFC3339)}, 200)
	nextTask(t, tasks, "task.due", "survey")

	// The followers catch up by themselves: poll until every one of them
	// has applied something, owes nothing and its cursor is its leader's
	// head.
	followers := [][2]string{{"segmentation", "profile"}, {"loyalty", "profile"}, {"loyalty", "segmentation"},
		{"care", "profile"}, {"care", "segmentation"}, {"care", "loyalty"}}
	var samples []sample
	deadline := time.Now().Add(20 * time.Second)
	for {
		samples = scrape(t, metrics)
		behind := ""
		for _, f := range followers {
			c, n := "rapport_component="+f[0], "feed_follower="+f[1]
			applied, _ := series(samples, "rapport_feed_applied_total", c, n)
			events, ok := series(samples, "rapport_feed_lag_events", c, n)
			// The cursor, from the follower's file, against the head,
			// from the leader's.
			cursor, okc := series(samples, "rapport_feed_cursor", c, n)
			head, okh := series(samples, "rapport_feed_head", "rapport_component="+f[1])
			if !ok || !okc || !okh || applied == 0 || events != 0 || cursor != head {
				behind += fmt.Sprintf(" %s following %s (applied %v, %v behind, reported %v; cursor %v of head %v, reported %v %v);",
					f[0], f[1], applied, events, ok, cursor, head, okc, okh)
			}
		}
		// Care records a timer's lateness once the transaction that fired
		// it has committed, and the task.due event above is visible from
		// that commit on: the metric can trail the event.
		if n, ok := series(samples, "rapport_timer_lateness_seconds_count", "rapport_component=care", "timer_set=plan"); !ok || n == 0 {
			behind += " care's plan timer lateness not recorded yet;"
		}
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followers not caught up after 20 s:%s", behind)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's metrics; no signal to wait on
	}

	for _, c := range []struct {
		what   string
		name   string
		labels []string
		ok     func(v float64) bool
	}{
		{"the purchase, counted at the profile service", "rpc_server_call_duration_seconds_count",
			[]string{"rapport_component=profile", "rpc_method=rapport.profile.v1.ProfileService/RecordEvent", "rpc_response_status_code=OK"},
			func(v float64) bool { return v == 1 }},
		{"the purchase, counted at the gateway", "http_server_request_duration_seconds_count",
			[]string{"rapport_component=gateway", "http_route=/v1/customers/{event.customer_id}/events", "http_response_status_code=200"},
			func(v float64) bool { return v == 1 }},
		{"the lag of a follower that caught up, in seconds", "rapport_feed_lag_seconds",
			[]string{"rapport_component=care", "feed_follower=loyalty"}, func(v float64) bool { return v == 0 }},
		{"profile.db's size", "rapport_bbolt_file_size_bytes", []string{"rapport_component=profile"}, func(v float64) bool { return v > 0 }},
		{"care.db's size", "rapport_bbolt_file_size_bytes", []string{"rapport_component=care"}, func(v float64) bool { return v > 0 }},
		{"profile's commits, timed", "rapport_bbolt_commit_duration_seconds_count", []string{"rapport_component=profile"},
			func(v float64) bool { return v >= 2 }},
		{"profile's writes per commit", "rapport_bbolt_commit_batch_size_sum", []string{"rapport_component=profile"},
			func(v float64) bool { return v >= 2 }},
		{"the segment evaluated over the tenant when created", "rapport_segmentation_evaluation_duration_seconds_count",
			[]string{"rapport_component=segmentation", "segmentation_scope=tenant"}, func(v float64) bool { return v == 1 }},
		{"the buyer evaluated after the purchase", "rapport_segmentation_evaluation_duration_seconds_count",
			[]string{"rapport_component=segmentation", "segmentation_scope=customer"}, func(v float64) bool { return v >= 1 }},
		{"the programme reconciled clean", "rapport_loyalty_reconciliation_differences",
			[]string{"rapport_component=loyalty", "rapport_tenant=acme", "loyalty_program=club"}, func(v float64) bool { return v == 0 }},
		{"one clean reconciliation run", "rapport_loyalty_reconciliation_runs_total",
			[]string{"rapport_component=loyalty", "loyalty_reconciliation_result=clean"}, func(v float64) bool { return v == 1 }},
		{"the survey's plan timer, fired", "rapport_timer_lateness_seconds_count",
			[]string{"rapport_component=care", "timer_set=plan"}, func(v float64) bool { return v == 1 }},
		{"the survey's plan timer, a minute late", "rapport_timer_lateness_seconds_sum",
			[]string{"rapport_component=care", "timer_set=plan"}, func(v float64) bool { return v == 60 }},
		{"the process, once", "target_info", []string{"service_name=rapport"}, func(v float64) bool { return v == 1 }},
		{"the Go runtime", "go_goroutines", nil, func(v float64) bool { return v > 0 }},
	} {
		v, found := series(samples, c.name, c.labels...)
		if !found || !c.ok(v) {
			t.Errorf("%s: %s%v = %v (found %v)", c.what, c.name, c.labels, v, found)
		}
	}
	if n := strings.Count(fmt.Sprint(names(samples)), " target_info "); n != 1 {
		t.Errorf("%d target_info series, want one for the process", n)
	}
}

// names lists the samples' names, space separated, for counting.
func names(samples []sample) string {
	var b strings.Builder
	b.WriteString(" ")
	for _, s := range samples {
		b.WriteString(s.name + " ")
	}
	return b.String()
}

// TestSuiteMetricsPerProcess: a process running one component names
// itself after it in target_info and reports only its own component;
// --metrics-addr "" turns the endpoint off.
func TestSuiteMetricsPerProcess(t *testing.T) {
	acc := start(t, "--target=access", "--data-dir", t.TempDir(), "--access-addr", "127.0.0.1:0")
	svc := start(t, "--target=profile", "--data-dir", t.TempDir(), "--profile-addr", "127.0.0.1:0", "--access-addr", acc.grpcAddr("access"))
	samples := scrape(t, svc.urls["metrics"])
	if _, ok := series(samples, "target_info", "service_name=rapport-profile"); !ok {
		t.Error("the profile process's target_info is not rapport-profile")
	}
	if _, ok := series(samples, "rapport_bbolt_file_size_bytes", "rapport_component=profile"); !ok {
		t.Error("the profile process does not report profile.db's size")
	}
	for _, s := range samples {
		if c, ok := s.labels["rapport_component"]; ok && c != "profile" {
			t.Errorf("the profile process reports %s for %s", s.name, c)
		}
	}
	gw := start(t, "--target=gateway", "--data-dir", t.TempDir(), "--profile-addr", svc.grpcAddr("profile"),
		"--segmentation-addr", "", "--loyalty-addr", "", "--care-addr", "", "--http-addr", "127.0.0.1:0", "--metrics-addr", "")
	if u, ok := gw.urls["metrics"]; ok {
		t.Errorf("--metrics-addr \"\" still serves metrics at %s", u)
	}
}
