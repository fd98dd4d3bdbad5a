// Package carebench is `rapport bench care`: the care service's timer
// benchmark (issue must-show 5). A care.db on a fresh bbolt file (real
// fsync) holds --timers customers, each with one pending plan timer: a
// complaint follow-up whose occurrence is the complaint's record time, so
// every customer's timer can be placed at any instant.
//
//	load     customer.created and a complaint per customer, applied through
//	         store.ApplyProfileEvent in bulk transactions; load time, db size
//	steady   the service's loop (FireDue, then clock.WaitUntil with
//	         TimerWake) while --rate timers a second fall due for --steady;
//	         lateness of each firing = when the FireDue call that fired it
//	         returned (after its commit) minus its due; target p99 < 1 s
//	catchup  the loop stopped while --downtime of timers at --rate fell due,
//	         then restarted: time until every overdue timer fired, and until
//	         the loop is live again, while timers keep falling due at --rate
//
// The schedule is laid out on one time line, read through a clock that is
// the real clock plus an offset: the offset is set once per phase (so the
// steady window starts --lead after the loop starts, and the restart reads
// --downtime after the loop stopped), and within a phase the clock runs at
// real speed, so every lateness is real elapsed time. Peak RSS is reported
// per phase.
package carebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// TargetP99 is the target for the lateness of firing.
const TargetP99 = time.Second

// Config configures a run.
type Config struct {
	// Timers is the number of customers, each with one pending timer.
	Timers int
	// Rate is how many timers fall due per second in the steady and
	// catch-up windows.
	Rate int
	// Steady is how long the steady window lasts.
	Steady time.Duration
	// Downtime is how long the loop is stopped; Tail how long timers keep
	// falling due at Rate after the restart.
	Downtime, Tail time.Duration
	// Lead is the time between the loop starting and the first steady due.
	Lead time.Duration
	// Horizon spreads the timers not in a window over this long, starting
	// an hour after the catch-up window.
	Horizon time.Duration
	// Batch is the customers loaded per transaction.
	Batch int
	// CatchupTimeout bounds the catch-up phase.
	CatchupTimeout time.Duration
	// DataDir is an empty or new folder for care.db, kept afterwards; empty
	// means a temporary folder, removed.
	DataDir string
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.Timers < 1 || c.Rate < 1 || c.Batch < 1 {
		errs = append(errs, errors.New("--timers, --rate and --batch must be at least 1"))
	}
	if c.Steady <= 0 || c.Downtime < 0 || c.Tail < 0 || c.Lead < 0 || c.Horizon <= 0 || c.CatchupTimeout <= 0 {
		errs = append(errs, errors.New("--steady, --horizon and --catchup-timeout must be positive, --downtime, --tail and --lead not negative"))
	}
	if need := c.steadyN() + c.catchupN(); need > c.Timers {
		errs = append(errs, fmt.Errorf("--rate × (--steady + --downtime + --tail) = %d timers, more than --timers %d", need, c.Timers))
	}
	return errors.Join(errs...)
}

func (c *Config) count(d time.Duration) int { return int(d.Seconds() * float64(c.Rate)) }
func (c *Config) steadyN() int              { return c.count(c.Steady) }
func (c *Config) overdueN() int             { return c.count(c.Downtime) }
func (c *Config) catchupN() int             { return c.count(c.Downtime) + c.count(c.Tail) }

// Report is a run's outcome.
type Report struct {
	Machine Machine       `json:"machine"`
	Config  ReportConfig  `json:"config"`
	Load    LoadResult    `json:"load"`
	Steady  *SteadyResult `json:"steady,omitempty"`
	Catchup *CatchResult  `json:"catchup,omitempty"`
	// PendingPlanTimers and PendingTaskTimers are counted at the end.
	PendingPlanTimers int `json:"pending_plan_timers_end"`
	PendingTaskTimers int `json:"pending_task_timers_end"`
}

// ReportConfig echoes the config.
type ReportConfig struct {
	Timers          int     `json:"timers"`
	Rate            int     `json:"rate_per_second"`
	SteadySeconds   float64 `json:"steady_seconds"`
	DowntimeSeconds float64 `json:"downtime_seconds"`
	TailSeconds     float64 `json:"tail_seconds"`
	HorizonHours    float64 `json:"horizon_hours"`
	Batch           int     `json:"batch"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	CPU       string `json:"cpu,omitempty"`
}

// LoadResult is the load phase's.
type LoadResult struct {
	Customers         int     `json:"customers"`
	Seconds           float64 `json:"seconds"`
	PerSecond         float64 `json:"customers_per_second"`
	DBBytes           int64   `json:"db_bytes"`
	PendingPlanTimers int     `json:"pending_plan_timers"`
	PeakRSSBytes      int64   `json:"peak_rss_bytes"`
}

// Lateness summarises actual-minus-due, in seconds.
type Lateness struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P99   float64 `json:"p99_seconds"`
	Max   float64 `json:"max_seconds"`
}

// SteadyResult is the steady phase's.
type SteadyResult struct {
	Due      int      `json:"due"`
	Lateness Lateness `json:"lateness"`
	// Fired is the sum of FireDue's counts; Calls how often it ran.
	Fired        int     `json:"fired"`
	Calls        int     `json:"fire_due_calls"`
	Seconds      float64 `json:"seconds"`
	Achieved     float64 `json:"achieved_per_second"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	Pass         bool    `json:"pass"`
}

// CatchResult is the catch-up phase's.
type CatchResult struct {
	// Overdue timers were due during the downtime; they all fired after
	// OverdueSeconds, at OverduePerSecond.
	Overdue          int     `json:"overdue"`
	OverdueSeconds   float64 `json:"overdue_seconds"`
	OverduePerSecond float64 `json:"overdue_per_second"`
	// LiveSeconds is when the loop was live again: the end of the first
	// FireDue call after the overdue ones that took under TargetP99.
	LiveSeconds float64 `json:"live_seconds"`
	// Tail are the timers falling due after the restart; TailLive those
	// of them due after the loop was live again.
	Tail         Lateness `json:"tail_lateness"`
	TailLive     Lateness `json:"tail_lateness_once_live"`
	Fired        int      `json:"fired"`
	Calls        int      `json:"fire_due_calls"`
	Complete     bool     `json:"complete"`
	PeakRSSBytes int64    `json:"peak_rss_bytes"`
}

// benchClock is the real clock plus an offset set between phases.
type benchClock struct{ off atomic.Int64 }

func (c *benchClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// readAs sets the offset so that the clock reads t now.
func (c *benchClock) readAs(t time.Time) { c.off.Store(int64(t.Sub(time.Now()))) }

// Run runs load, steady and catch-up, reporting progress to progress.
func Run(ctx context.Context, cfg Config, progress io.Writer) (rep *Report, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rapport-bench-care-"); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty", dir)
		}
	}
	rep = &Report{Machine: thisMachine(), Config: ReportConfig{Timers: cfg.Timers, Rate: cfg.Rate,
		SteadySeconds: cfg.Steady.Seconds(), DowntimeSeconds: cfg.Downtime.Seconds(), TailSeconds: cfg.Tail.Seconds(),
		HorizonHours: cfg.Horizon.Hours(), Batch: cfg.Batch}}
	b, err := load(ctx, cfg, dir+"/care.db", progress, &rep.Load)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer func() { err = errors.Join(err, b.db.Close()) }()
	if rep.Steady, err = b.steady(ctx, progress); err != nil {
		return nil, fmt.Errorf("steady: %w", err)
	}
	if cfg.Downtime > 0 || cfg.Tail > 0 {
		if rep.Catchup, err = b.catchup(ctx, progress); err != nil {
			return nil, fmt.Errorf("catchup: %w", err)
		}
	}
	rep.PendingPlanTimers, rep.PendingTaskTimers = b.pending()
	return rep, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) }

// WriteTable writes the report for a person.
func (r *Report) WriteTable(w io.Writer) error {
	m, c := r.Machine, r.Config
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s\n", m.CPUs, m.CPU, m.OS, m.GoVersion)
	fmt.Fprintf(w, "timers: %d pending, %d/s due for %gs steady, %gs downtime + %gs after restart, the rest over %gh\n\n",
		c.Timers, c.Rate, c.SteadySeconds, c.DowntimeSeconds, c.TailSeconds, c.HorizonHours)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tresult\ttarget\tverdict")
	l := r.Load
	fmt.Fprintf(tw, "load %d customers + complaints, %d per tx (not a target)\t%.1f s (%.0f/s)\t\t\n", l.Customers, c.Batch, l.Seconds, l.PerSecond)
	fmt.Fprintf(tw, "  care.db size / pending plan timers\t%s / %d\t\t\n", mib(l.DBBytes), l.PendingPlanTimers)
	fmt.Fprintf(tw, "  peak RSS during load\t%s\treported\t\n", mib(l.PeakRSSBytes))
	if s := r.Steady; s != nil {
		fmt.Fprintf(tw, "steady lateness p50 (fired − due)\t%s\t\t\n", ms(s.Lateness.P50))
		fmt.Fprintf(tw, "steady lateness p99 (%d due at %.0f/s)\t%s\t< %s\t%s\n", s.Due, s.Achieved, ms(s.Lateness.P99), TargetP99, verdict(s.Pass))
		fmt.Fprintf(tw, "  max / FireDue calls / fired\t%s / %d / %d\t\t\n", ms(s.Lateness.Max), s.Calls, s.Fired)
		fmt.Fprintf(tw, "  peak RSS during steady firing\t%s\treported\t\n", mib(s.PeakRSSBytes))
	}
	if k := r.Catchup; k != nil {
		fmt.Fprintf(tw, "catch-up: %d overdue after %gs down, all fired in\t%.1f s (%.0f/s)\treported\t%s\n",
			k.Overdue, c.DowntimeSeconds, k.OverdueSeconds, k.OverduePerSecond, verdict(k.Complete))
		fmt.Fprintf(tw, "  live again (a FireDue call under %s) after\t%.1f s\t\t\n", TargetP99, k.LiveSeconds)
		fmt.Fprintf(tw, "  timers due after restart: p50 / p99 / max lateness\t%s / %s / %s (%d)\t\t\n",
			ms(k.Tail.P50), ms(k.Tail.P99), ms(k.Tail.Max), k.Tail.Count)
		fmt.Fprintf(tw, "  … of them due once live: p50 / p99 / max\t%s / %s / %s (%d)\t\t\n",
			ms(k.TailLive.P50), ms(k.TailLive.P99), ms(k.TailLive.Max), k.TailLive.Count)
		fmt.Fprintf(tw, "  FireDue calls / fired\t%d / %d\t\t\n", k.Calls, k.Fired)
		fmt.Fprintf(tw, "  peak RSS during catch-up\t%s\treported\t\n", mib(k.PeakRSSBytes))
	}
	fmt.Fprintf(tw, "pending at the end: plan timers / task SLA timers\t%d / %d\t\t\n", r.PendingPlanTimers, r.PendingTaskTimers)
	return tw.Flush()
}

func thisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	return m
}

// peakRSS reads VmHWM, the process's peak resident set, from
// /proc/self/status; 0 where there is none.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS resets VmHWM to the current resident set (Linux 4.0+), so a
// later peakRSS is the peak of what runs in between.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
