package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const chaosUsage = `usage: rapport chaos [flags]

Starts the suite as separate processes (rapport serve --target=X for
profile, segmentation, loyalty, care and the gateway, on loopback ports,
over one data dir), sets up tenant "chaos" (a loyalty programme earning on
purchases, a reward with stock, a dynamic segment with a loyalty bonus,
care plans that make a survey task and a thank-you webhook per purchase and
a follow-up task per complaint), and then, for --duration:

  - drives a mixed load through the gateway's REST API from --concurrency
    workers, at most --rate operations a second: imports (customers in batches, their consent and enrolment,
    and their purchase history in batches), purchases, refunds,
    complaints, reads, point and reward redemptions and task completions.
    Every write carries a client id; a failed call (a process is down) is
    retried with the same ids, as a real client would, and what the
    gateway acknowledges is recorded;
  - SIGKILLs a random process every --kill-every (jittered ±50%; the
    gateway about one time in eight) and restarts it after a pause of up
    to 1.5 s.

Then it stops killing, lets the workers finish their last calls, waits
(up to --settle) for every feed follower to catch up, and checks:

  - no acknowledged write was lost (customers, events, redemptions,
    completions), and nothing was applied that nobody sent;
  - segmentation's features of every customer equal what the profile
    timeline implies (nothing applied twice, nothing missed), and the
    dynamic segment holds exactly the customers its rule selects;
  - loyalty reconciles clean, every purchase earned once and every refund
    reversed once, every segment entry gave its bonus once, and the
    reward's stock matches its redemptions;
  - every due care item fired exactly once: one survey task and one
    message per purchase, one follow-up per complaint, each task due
    once on care's feed, each message delivered under one delivery id
    (the receiver deduplicates on X-Rapport-Delivery);
  - after a graceful stop, every follower's cursor equals the last
    sequence of the feed it follows, and no follower set an event aside.

It prints a report (and writes it as markdown to --report) and exits 1 when
an invariant fails. Process logs are kept in <data-dir>/logs.

flags:
`

// chaosTenant owns everything the chaos load writes.
const chaosTenant = "chaos"

// chaosConfig is the configuration of `rapport chaos`.
type chaosConfig struct {
	Duration    time.Duration
	KillEvery   time.Duration
	DataDir     string
	Seed        uint64
	Report      string
	Concurrency int
	Rate        int
	Key         string
	Customers   int
	Settle      time.Duration
	Drain       time.Duration

	// command is the command line, for the report.
	command string
	// tempDir is set when DataDir was made for this run.
	tempDir bool
}

// Validate checks the config.
func (c *chaosConfig) Validate() error {
	var errs []error
	if c.Duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if c.KillEvery < 0 {
		errs = append(errs, errors.New("--kill-every must not be negative (0 kills nothing)"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("--concurrency must be at least 1"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative (0: as fast as the workers go)"))
	}
	if c.Customers < 5 {
		errs = append(errs, errors.New("--customers must be at least 5"))
	}
	if c.Settle <= 0 || c.Drain <= 0 {
		errs = append(errs, errors.New("--settle and --drain must be positive"))
	}
	return errors.Join(errs...)
}

// parseChaos reads the flags of `rapport chaos`. Like load's, they are not
// bound to RAPPORT_* variables: the chaos run must not pick up a server's
// data dir from the environment.
func parseChaos(args []string, output io.Writer) (chaosConfig, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() { fmt.Fprint(fs.Output(), chaosUsage); fs.PrintDefaults() }
	var cfg chaosConfig
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "how long the load runs and processes are killed")
	fs.DurationVar(&cfg.KillEvery, "kill-every", 5*time.Second, "mean time between kills, jittered ±50%; 0 kills nothing")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "empty or new folder for the databases and logs, kept afterwards (default: a temporary folder, removed after a clean run)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the load's and the killer's choices (0: from the clock); timing still varies between runs")
	fs.StringVar(&cfg.Report, "report", "", "also write the report as markdown to this file")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "load workers, each with one call in flight")
	fs.IntVar(&cfg.Rate, "rate", 100, "most operations started per second, by all workers together; 0: as fast as they go")
	fs.StringVar(&cfg.Key, "key", "", "API key of the tenant (default: none, or one created with the operator key when the suite has one)")
	fs.IntVar(&cfg.Customers, "customers", 400, "most customers the imports create")
	fs.DurationVar(&cfg.Settle, "settle", 2*time.Minute, "how long the checks wait for followers to catch up after the load")
	fs.DurationVar(&cfg.Drain, "drain", time.Minute, "how long workers retry their last call after the load ends")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("chaos: unexpected argument %q", fs.Arg(0))
	}
	cfg.command = "rapport chaos " + strings.Join(args, " ")
	return cfg, cfg.Validate()
}

func chaosCmd(ctx context.Context, args []string) error {
	cfg, err := parseChaos(args, os.Stderr)
	if err != nil {
		return err
	}
	binary, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "rapport-chaos")
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		cfg.DataDir, cfg.tempDir = dir, true
	} else if entries, err := os.ReadDir(cfg.DataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("chaos: --data-dir %s is not empty: the checks need a suite that holds only this run's data", cfg.DataDir)
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	rep, err := runChaos(ctx, cfg, binary, os.Stderr)
	if rep != nil {
		md := rep.markdown()
		fmt.Fprint(os.Stdout, md)
		if cfg.Report != "" {
			if werr := os.WriteFile(cfg.Report, []byte(md), 0o644); werr != nil {
				err = errors.Join(err, fmt.Errorf("chaos: write report: %w", werr))
			}
		}
	}
	clean := err == nil && rep != nil && rep.clean()
	switch {
	case cfg.tempDir && clean:
		os.RemoveAll(cfg.DataDir)
	default:
		fmt.Fprintf(os.Stderr, "chaos: data and process logs kept in %s\n", cfg.DataDir)
	}
	if err != nil {
		return err
	}
	if !rep.clean() {
		return fmt.Errorf("chaos: %d invariant checks failed", rep.failedChecks())
	}
	return nil
}

// randomSecret returns n random bytes, hex-encoded.
func randomSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// logsDir is where the processes' logs go.
func logsDir(dataDir string) string { return filepath.Join(dataDir, "logs") }
