package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/config"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
)

const fitUsage = `usage: rapport fit [flags]

Fits a tenant's customer value models — BG/NBD for purchase counts and
Gamma-Gamma for spend — through the segmentation gRPC API, waits for the fit
and prints its parameters. --as-of limits the history to what was known at
that instant (a backtest); with --holdout-end the forecast for (as-of,
holdout-end] is compared with the purchases that followed. A fit as of now
becomes the tenant's current model; a backtest does not unless --use.
Dates are YYYY-MM-DD (midnight UTC) or RFC 3339.

flags:
`

func fitCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fit", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), fitUsage); fs.PrintDefaults() }
	var (
		addr, tenant, apiKey, id, asOf, holdout, unit string
		use                                           bool
		timeout                                       time.Duration
	)
	b := config.New(fs, "RAPPORT_")
	b.String(&addr, "segmentation-addr", "127.0.0.1:7102", "gRPC address of the segmentation service")
	b.String(&tenant, "tenant", "", "tenant to fit (default: the API key's)")
	b.String(&apiKey, "api-key", "", "API key (Authorization: Bearer); its tenant is the one fitted")
	fs.StringVar(&id, "id", "", "fit id, so that a retry does not fit twice (default: chosen by the service)")
	fs.StringVar(&asOf, "as-of", "", "use the history up to this instant (default: now)")
	fs.StringVar(&holdout, "holdout-end", "", "compare the forecast with what happened up to this instant")
	fs.StringVar(&unit, "unit", "weeks", "time unit: days or weeks")
	fs.BoolVar(&use, "use", false, "make a backtest fit the tenant's current model")
	fs.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := b.Err(); err != nil {
		return err
	}
	if err := tenancy.Validate(tenant); err != nil && (apiKey == "" || tenant != "") {
		return fmt.Errorf("fit: --tenant: %w", err)
	}
	req := &segmentationv1.FitValueModelRequest{FitId: id, Wait: true}
	switch unit {
	case "days":
		req.TimeUnit = segmentationv1.TimeUnit_TIME_UNIT_DAYS
	case "weeks":
		req.TimeUnit = segmentationv1.TimeUnit_TIME_UNIT_WEEKS
	default:
		return fmt.Errorf("fit: --unit must be days or weeks, got %q", unit)
	}
	var err error
	if req.AsOf, err = parseInstant("as-of", asOf); err != nil {
		return err
	}
	if req.HoldoutEnd, err = parseInstant("holdout-end", holdout); err != nil {
		return err
	}
	if use {
		req.UseForScores = &use
	}
	cc, err := grpcclient.Dial(addr, grpcclient.Options{Credentials: keyCredentials(apiKey)})
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(withTenant(ctx, tenant), timeout)
	defer cancel()
	resp, err := segmentationv1.NewSegmentationServiceClient(cc).FitValueModel(ctx, req)
	if err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	if err := printFit(os.Stdout, resp.Fit); err != nil {
		return err
	}
	if resp.Fit.State != segmentationv1.FitState_FIT_STATE_SUCCEEDED {
		return fmt.Errorf("fit %s failed: %s", resp.Fit.FitId, resp.Fit.Error)
	}
	return nil
}

// parseInstant reads a flag's date (midnight UTC) or RFC 3339 time; empty is nil.
func parseInstant(name, s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("fit: --%s: %q is neither YYYY-MM-DD nor RFC 3339", name, s)
}

// evaluations says how many likelihood evaluations a fit took, with those
// of its warm start on a subsample.
func evaluations(full, warm, warmRows int64) string {
	if warmRows == 0 {
		return fmt.Sprint(full)
	}
	return fmt.Sprintf("%d (after %d on %d rows)", full, warm, warmRows)
}

// printFit writes a fit as a table.
func printFit(w io.Writer, f *segmentationv1.ValueModelFit) error {
	unit := strings.ToLower(strings.TrimPrefix(f.TimeUnit.String(), "TIME_UNIT_"))
	state := strings.ToLower(strings.TrimPrefix(f.State.String(), "FIT_STATE_"))
	fmt.Fprintf(w, "fit %s: %s in %v (%s, as of %s)\n", f.FitId, state,
		f.FitTime.AsDuration().Round(time.Millisecond), unit, f.AsOf.AsTime().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	num := func(v float64) string { return fmt.Sprintf("%.4f", v) }
	if bg := f.BgNbd; bg != nil {
		row("", "", "")
		row(fmt.Sprintf("BG/NBD (%d customers, %d repeat buyers)", bg.Customers, bg.RepeatBuyers), "estimate", "std err")
		p, se := bg.Params, bg.StdErr
		row("r", num(p.R), num(se.R))
		row("α (alpha, "+unit+")", num(p.Alpha), num(se.Alpha))
		row("a", num(p.A), num(se.A))
		row("b", num(p.B), num(se.B))
		row("log-likelihood", fmt.Sprintf("%.2f", bg.LogLikelihood), "")
		row("likelihood evaluations", evaluations(bg.Evaluations, bg.WarmStartEvaluations, bg.WarmStartRows), "")
	}
	if gg := f.GammaGamma; gg != nil {
		row("", "", "")
		row(fmt.Sprintf("Gamma-Gamma (%d repeat buyers)", gg.Customers), "estimate", "std err")
		p, se := gg.Params, gg.StdErr
		row("p", num(p.P), num(se.P))
		row("q", num(p.Q), num(se.Q))
		row("γ (gamma, major units)", num(p.Gamma), num(se.Gamma))
		row("log-likelihood", fmt.Sprintf("%.2f", gg.LogLikelihood), "")
		row("likelihood evaluations", evaluations(gg.Evaluations, gg.WarmStartEvaluations, gg.WarmStartRows), "")
	}
	if bt := f.Backtest; bt != nil {
		row("", "", "")
		row(fmt.Sprintf("holdout to %s (%.4g %s)", bt.End.AsTime().Format("2006-01-02"), bt.Length, unit), "", "")
		row("predicted repeat purchases", fmt.Sprintf("%.1f", bt.PredictedRepeatPurchases), "")
		row("actual repeat purchases", fmt.Sprint(bt.ActualRepeatPurchases), "")
		if bt.ActualRepeatPurchases > 0 {
			row("predicted / actual", fmt.Sprintf("%.3f", bt.PredictedRepeatPurchases/float64(bt.ActualRepeatPurchases)), "")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if f.Error != "" {
		_, err := fmt.Fprintf(w, "note: %s\n", f.Error)
		return err
	}
	return nil
}
