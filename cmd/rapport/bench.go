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

	"rapport.dev/cmd/rapport/internal/segbench"
)

const benchUsage = `usage: rapport bench segmentation [flags]

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
		return segbench.Config{}, false, fmt.Errorf("bench: the only benchmark is \"segmentation\"")
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

func benchCmd(ctx context.Context, args []string) error {
	cfg, asJSON, err := parseBench(args, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := segbench.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	return rep.WriteTable(os.Stdout)
}
