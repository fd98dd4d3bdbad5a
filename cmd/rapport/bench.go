package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"rapport.dev/cmd/rapport/internal/carebench"
	"rapport.dev/cmd/rapport/internal/segbench"
)

const benchUsage = `usage: rapport bench segmentation [flags]
       rapport bench care [flags]

Runs the segmentation benchmarks in this process (see BENCHMARKS-SEGMENTATION.md):

  freshness  purchase acknowledged by profile → segment.entered on the
             segmentation feed, under steady background ingest
             target: p99 under 100 ms
  reeval     bulk-loads a generated data set into a segmentation.db, then
             times the full re-evaluation (RFM, pyramid, dynamic segments)
             target: under 10 s; peak RSS reported
  postgres   the same RFM quintiles with NTILE(5) in a throwaway PostgreSQL
             cluster over the same purchases (installed with apt-get when
             missing and running as root; skipped when impossible)
             target: reeval at least 5x faster
  valuemodel (only with --phases) bulk-loads --customers customers drawn
             from BG/NBD and Gamma-Gamma with CDNOW's parameters, fits both
             weekly as the service does, checks the parameters come back,
             then re-evaluates everyone ranking on the fitted CLV
             target: the fit under 30 s for 1,000,000 customers

flags:
`

// parseBench reads the flags of `rapport bench segmentation`. Like `rapport
// load`, they are not bound to RAPPORT_* variables.
func parseBench(args []string, output io.Writer) (segbench.Config, bool, error) {
	if len(args) == 0 || args[0] != "segmentation" {
		fmt.Fprint(output, benchUsage)
		return segbench.Config{}, false, fmt.Errorf("bench: the benchmarks are \"segmentation\" and \"care\"")
	}
	fs := flag.NewFlagSet("bench segmentation", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() { fmt.Fprint(fs.Output(), benchUsage); fs.PrintDefaults() }
	cfg := segbench.Config{Seed: 1, Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	var phases string
	var asJSON bool
	fs.IntVar(&cfg.Customers, "customers", 1_000_000, "customers in the generated data set")
	fs.IntVar(&cfg.Purchases, "purchases", 10_000_000, "purchases in the generated data set")
	fs.IntVar(&cfg.Segments, "segments", 20, "dynamic segments evaluated")
	fs.StringVar(&phases, "phases", strings.Join(segbench.DefaultPhases, ","), "phases to run: a comma list of "+strings.Join(segbench.AllPhases, ", "))
	fs.StringVar(&cfg.DataDir, "data-dir", "", "empty or new folder for the databases, kept afterwards (default: a temporary folder, removed)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the data set")
	fs.IntVar(&cfg.Probes, "probes", 300, "freshness: probe customers measured")
	fs.IntVar(&cfg.Rate, "rate", 1000, "freshness: background RecordEvent calls per second")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	for _, p := range strings.Split(phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases = append(cfg.Phases, p)
		}
	}
	return cfg, asJSON, cfg.Validate()
}

const careBenchUsage = `usage: rapport bench care [flags]

Runs the care timer benchmark in this process (see BENCHMARKS-CARE.md): a
care.db on a fresh bbolt file (real fsync) with --timers customers, each with
one pending complaint follow-up timer, loaded through ApplyProfileEvent.

  load     --timers customers and their timers, --batch per transaction;
           load time, care.db size, peak RSS
  steady   the service's timer loop (FireDue, clock.WaitUntil, TimerWake)
           while --rate timers a second fall due for --steady; lateness
           (FireDue returned after its commit, minus due) p50/p99/max
           target: p99 under 1 s
  catchup  the loop stopped for --downtime of timers at --rate, then
           restarted while more fall due for --tail: time until every
           overdue timer fired and until the loop is live again

flags:
`

// parseCareBench reads the flags of `rapport bench care`.
func parseCareBench(args []string, output io.Writer) (carebench.Config, bool, string, error) {
	fs := flag.NewFlagSet("bench care", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() { fmt.Fprint(fs.Output(), careBenchUsage); fs.PrintDefaults() }
	var cfg carebench.Config
	var asJSON bool
	var cpuProfile string
	fs.IntVar(&cfg.Timers, "timers", 1_000_000, "customers, each with one pending timer")
	fs.IntVar(&cfg.Rate, "rate", 1000, "timers falling due per second in the steady and catch-up windows")
	fs.DurationVar(&cfg.Steady, "steady", time.Minute, "steady firing: how long timers fall due at --rate")
	fs.DurationVar(&cfg.Downtime, "downtime", 10*time.Minute, "catch-up: how long the loop is down while timers fall due at --rate (0 with --tail 0 skips the phase)")
	fs.DurationVar(&cfg.Tail, "tail", time.Minute, "catch-up: how long timers keep falling due at --rate after the restart")
	fs.DurationVar(&cfg.Lead, "lead", 5*time.Second, "steady firing: time from starting the loop to the first due")
	fs.DurationVar(&cfg.Horizon, "horizon", 24*time.Hour, "the remaining timers are due over this long, an hour after the catch-up window")
	fs.IntVar(&cfg.Batch, "batch", 5000, "load: customers per transaction")
	fs.DurationVar(&cfg.CatchupTimeout, "catchup-timeout", 20*time.Minute, "catch-up: give up after this long")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "empty or new folder for care.db, kept afterwards (default: a temporary folder, removed)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return cfg, false, "", err
	}
	if fs.NArg() > 0 {
		return cfg, false, "", fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	return cfg, asJSON, cpuProfile, cfg.Validate()
}

// startCPUProfile starts a CPU profile into path; the returned stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func careBenchCmd(ctx context.Context, args []string) error {
	cfg, asJSON, cpuProfile, err := parseCareBench(args, os.Stderr)
	if err != nil {
		return err
	}
	stop, err := startCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	rep, err := carebench.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	return rep.WriteTable(os.Stdout)
}

func benchCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "care" {
		return careBenchCmd(ctx, args[1:])
	}
	cfg, asJSON, err := parseBench(args, os.Stderr)
	if err != nil {
		return err
	}
	stop, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer stop()
	rep, err := segbench.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	return rep.WriteTable(os.Stdout)
}
