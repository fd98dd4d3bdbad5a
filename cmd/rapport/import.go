package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"

	"rapport.dev/cmd/rapport/internal/importer"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/config"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
)

const importUsage = `usage: rapport import [flags] FILE

Loads purchase histories through the profile gRPC API. Formats:
  cdnow-master  customer_id date(YYYYMMDD) cds dollars         (CDNOW_master.txt)
  cdnow-sample  master_id sample_id date cds dollars           (CDNOW_sample.txt; customer = sample id)
  csv           a CSV with a header row and --map, e.g.
                --map 'customer=CustomerID,order=InvoiceNo,time=InvoiceDate,amount=UnitPrice,quantity=Quantity,default_currency=GBP,cancel_prefix=C,amount_is_unit_price'
Rows with a negative quantity or amount, or a cancelled-invoice marker, become
refunds of the customer's earlier purchase. Event ids derive from the rows'
content, so importing the same file again adds nothing.

flags:
`

func importCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), importUsage); fs.PrintDefaults() }
	var (
		addr, tenant, apiKey, format, mapping, prefix, source string
		batch, concurrency                                    int
		timeout                                               time.Duration
	)
	b := config.New(fs, "RAPPORT_")
	b.String(&addr, "profile-addr", "127.0.0.1:7101", "gRPC address of the profile service")
	b.String(&tenant, "tenant", "", "tenant to import into (default: the API key's)")
	b.String(&apiKey, "api-key", "", "API key (Authorization: Bearer); its tenant is the one imported into")
	fs.StringVar(&format, "format", "", "cdnow-master, cdnow-sample or csv (default: from the file name, else csv)")
	fs.StringVar(&mapping, "map", "", "column mapping for --format=csv")
	fs.StringVar(&prefix, "customer-prefix", "", "prefix added to every customer id")
	fs.StringVar(&source, "source", importer.DefaultSource, "source recorded on every event")
	fs.IntVar(&batch, "batch", importer.DefaultBatchSize, "events per BatchRecordEvents call")
	fs.IntVar(&concurrency, "concurrency", importer.DefaultConcurrency, "batches in flight")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := b.Err(); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import: exactly one FILE is required")
	}
	if err := tenancy.Validate(tenant); err != nil && (apiKey == "" || tenant != "") {
		return fmt.Errorf("import: --tenant: %w", err)
	}
	path := fs.Arg(0)
	if format == "" {
		format = guessFormat(path)
	}
	opts := importer.Options{
		Format:         importer.Format(format),
		CustomerPrefix: prefix,
		Source:         source,
		BatchSize:      batch,
		Concurrency:    concurrency,
		Progress:       os.Stderr,
		IsTerminal:     importer.Terminal(os.Stderr),
		Clock:          clock.Real{},
	}
	if mapping != "" {
		m, err := importer.ParseMapping(mapping)
		if err != nil {
			return fmt.Errorf("import: --map: %w", err)
		}
		opts.Mapping = m
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{Credentials: keyCredentials(apiKey), Extra: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64 << 20))}})
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(withTenant(ctx, tenant), timeout)
	defer cancel()
	sum, err := importer.Run(ctx, profilev1.NewProfileServiceClient(cc), f, opts)
	if sum != nil {
		if perr := sum.Print(os.Stdout); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// guessFormat picks the CDNOW formats by their well-known file names.
func guessFormat(path string) string {
	switch {
	case containsFold(path, "cdnow_master"):
		return string(importer.FormatCDNOWMaster)
	case containsFold(path, "cdnow_sample"):
		return string(importer.FormatCDNOWSample)
	}
	return string(importer.FormatCSV)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
