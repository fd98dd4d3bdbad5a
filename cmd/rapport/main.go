// Command rapport is the one binary of the Rapport suite, in the style of
// Loki and Mimir targets: `rapport serve --target=all` runs every service and
// the gateway in one process (each service on its own gRPC listener, talking
// to the others over gRPC), `--target=profile` or `--target=gateway` runs
// one. `rapport import` bulk-loads purchase histories through the gRPC API;
// `rapport load` and `rapport bench` measure the suite; `rapport chaos`
// kills its processes under load and checks that nothing was lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // customer time zones must resolve on machines without a zone database
)

const usage = `rapport — customer operations platform

usage:
  rapport serve  [flags]   run the suite, or one component of it (--target)
  rapport import [flags] FILE
                           load purchase histories from CSV through the gRPC API
  rapport fit    [flags]   fit a tenant's value models (BG/NBD, Gamma-Gamma) and print them
  rapport load   [flags]   measure durable writes, batched ingest and gateway reads (BENCHMARKS.md)
  rapport bench segmentation [flags]
                           measure segmentation freshness and full re-evaluation (BENCHMARKS-SEGMENTATION.md)
  rapport bench care [flags]
                           measure the care scheduler over 1,000,000 pending timers (BENCHMARKS-CARE.md)
  rapport keys create|revoke|bootstrap [flags]
                           manage API keys (the operator key is in <data-dir>/operator.key)
  rapport health --grpc HOST:PORT | --http URL
                           check a running component (exit 0 when SERVING / 2xx), for containers without a shell
  rapport chaos  [flags]   run the suite as processes under load, kill them at random, check nothing was lost (CHAOS.md)
  rapport help COMMAND     show a command's flags
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rapport:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("a command is required")
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		if len(rest) == 0 {
			fmt.Print(usage)
			return nil
		}
		cmd, rest = rest[0], []string{"-h"}
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest)
	case "import":
		return importCmd(ctx, rest)
	case "fit":
		return fitCmd(ctx, rest)
	case "load":
		return loadCmd(ctx, rest)
	case "bench":
		return benchCmd(ctx, rest)
	case "keys":
		return keysCmd(ctx, rest)
	case "health":
		return healthCmd(ctx, rest)
	case "chaos":
		return chaosCmd(ctx, rest)
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
