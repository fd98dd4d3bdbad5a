package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// chaosReport is what a chaos run did and found.
type chaosReport struct {
	cfg                       chaosConfig
	started, loadEnded, ended time.Time
	drained, settled          time.Duration
	auth                      string
	ops                       map[string]chaosOpStats
	procs                     []chaosProcReport
	customers, inDoubt        int
	hookFailed                int
	checks                    []*chaosCheck
	// checkErr is set when the last check pass could not read the suite.
	checkErr string
}

type chaosProcReport struct {
	name  string
	stats chaosProcStats
}

func (r *chaosReport) failedChecks() int {
	n := 0
	for _, c := range r.checks {
		if c.Failures > 0 {
			n++
		}
	}
	if r.checkErr != "" {
		n++
	}
	return n
}

func (r *chaosReport) clean() bool { return r.failedChecks() == 0 }

func (r *chaosReport) kills() int {
	n := 0
	for _, p := range r.procs {
		n += p.stats.Kills
	}
	return n
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// markdown renders the report.
func (r *chaosReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Chaos run\n\n")
	p("```\n%s\n```\n\n", r.cfg.command)
	rate := "as fast as they went"
	if r.cfg.Rate > 0 {
		rate = fmt.Sprintf("at most %d operations/s", r.cfg.Rate)
	}
	p("Started %s. The load ran for %s; its last calls were answered %s later; the checks held after %s more; %s in all. "+
		"Seed %d (it fixes the load's and the killer's choices, not their timing), %d workers %s, tenant %q authenticated by the %s. %d customers imported.\n\n",
		r.started.UTC().Format(time.RFC3339), r.loadEnded.Sub(r.started).Round(time.Second), roundDuration(r.drained),
		roundDuration(r.settled), r.ended.Sub(r.started).Round(time.Second), r.cfg.Seed, r.cfg.Concurrency, rate, chaosTenant, r.auth, r.customers)

	p("## What it did\n\n")
	p("Every process of the suite ran on its own (`rapport serve --target=X`), over one data dir. ")
	p("Calls went through the gateway's REST API; a call that failed (a process down or restarting) was sent again with the same client ids until it got a final answer.\n\n")
	p("| operation | acknowledged | refused | failed attempts retried | no answer at the end | p50 | p99 |\n|---|---:|---:|---:|---:|---:|---:|\n")
	kinds := append(slices.Clone(chaosOpOrder), opSetup)
	var acked, retried int
	for _, k := range kinds {
		s, ok := r.ops[k]
		if !ok {
			continue
		}
		acked += s.Acked
		retried += s.Retried
		p("| %s | %d | %d | %d | %d | %s | %s |\n", k, s.Acked, s.Refused, s.Retried, s.GaveUp,
			roundDuration(percentile(s.latencies, 0.5)), roundDuration(percentile(s.latencies, 0.99)))
	}
	p("\n%d calls acknowledged; %d failed attempts were retried. The checks made another %d calls after the load.",
		acked, retried, r.ops[opCheck].Acked+r.ops[opCheck].Refused)
	var refusals []string
	for _, k := range kinds {
		s := r.ops[k]
		var parts []string
		for reason, n := range s.Refusals {
			parts = append(parts, fmt.Sprintf("%d × %s", n, reason))
		}
		sort.Strings(parts)
		if len(parts) > 0 {
			refusals = append(refusals, fmt.Sprintf("%s: %s", k, strings.Join(parts, ", ")))
		}
	}
	if len(refusals) > 0 {
		p(" Refusals are the services' final answers and changed nothing: a redemption beyond the balance or the stock, a task care had not made yet, a read of scores segmentation had not computed yet.\n\n")
		for _, s := range refusals {
			p("- %s\n", s)
		}
	}
	p("\n")

	p("## What was killed\n\n")
	p("Every %s on average (±50%%), a random process got SIGKILL (the gateway about one time in %d) and was restarted after a random pause of up to %s, on the same data and ports. ",
		r.cfg.KillEvery, int(1/chaosGatewayShare), chaosRestartPause)
	p("%d kills in all.\n\n", r.kills())
	p("| process | SIGKILLs | restarts | mean time from kill to ready | exits nobody asked for | failed starts |\n|---|---:|---:|---:|---:|---:|\n")
	for _, pr := range r.procs {
		s := pr.stats
		mean := time.Duration(0)
		if s.Kills > 0 {
			mean = s.Down / time.Duration(s.Kills)
		}
		p("| %s | %d | %d | %s | %d | %d |\n", pr.name, s.Kills, s.Restarts, roundDuration(mean), len(s.Crashes), len(s.StartFailures))
	}
	p("\n")
	for _, pr := range r.procs {
		for _, f := range pr.stats.StartFailures {
			p("- %s start failed: %s\n", pr.name, f)
		}
		if pr.stats.SlowStop {
			p("- %s did not stop within 15 s of SIGTERM at the end and was killed\n", pr.name)
		}
	}

	p("## What it found\n\n")
	p("| invariant | checked | result |\n|---|---|---|\n")
	for _, c := range r.checks {
		res := "holds"
		if c.Failures > 0 {
			res = fmt.Sprintf("**FAILS** (%d)", c.Failures)
		}
		p("| %s | %s | %s |\n", c.Name, c.Checked, res)
	}
	p("\n")
	if r.checkErr != "" {
		p("The last check pass could not read the suite: %s\n\n", r.checkErr)
	}
	for _, c := range r.checks {
		if len(c.Details) == 0 && len(c.Notes) == 0 {
			continue
		}
		p("**%s**\n\n", c.Name)
		for _, d := range c.Details {
			p("- %s\n", d)
		}
		if c.Failures > len(c.Details) {
			p("- … and %d more\n", c.Failures-len(c.Details))
		}
		for _, n := range c.Notes {
			p("- note: %s\n", n)
		}
		p("\n")
	}

	p("## Verdict\n\n")
	if r.clean() {
		p("**Clean.** %d kills; nothing acknowledged was lost, nothing was applied twice, every follower caught up, loyalty reconciles, and every due care item fired exactly once.\n", r.kills())
	} else {
		p("**%d of %d checks failed.** The details above say what; the processes' logs are in %s.\n", r.failedChecks(), len(r.checks), logsDir(r.cfg.DataDir))
	}
	return b.String()
}
