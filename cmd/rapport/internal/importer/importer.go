package importer

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
)

// Format names a file layout the importer understands.
type Format string

const (
	// FormatCDNOWMaster is CDNOW_master.txt: "customer_id date cds dollars",
	// whitespace separated, with an optional header line.
	FormatCDNOWMaster Format = "cdnow-master"
	// FormatCDNOWSample is CDNOW_sample.txt: "master_id sample_id date cds
	// dollars"; the customer is the sample id, as in the published results.
	FormatCDNOWSample Format = "cdnow-sample"
	// FormatCSV is any CSV file with a header row, read through a Mapping.
	FormatCSV Format = "csv"
)

// Clock tells the time. Run reads it for the progress bar and the elapsed
// time only, so tests can drive both without sleeping; platform/clock's Real
// and Fake satisfy it.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Defaults and limits of Options. Batches stay under the service's limit of
// 1000 items; a few batches in flight keep the service's commit pipeline
// busy without queueing so much that a retry storm follows an outage.
const (
	// DefaultBatchSize is the number of items per call when none is set.
	DefaultBatchSize = 500
	// MaxBatchSize is the service's limit per batch call.
	MaxBatchSize = 1000
	// DefaultConcurrency is the number of calls in flight when none is set.
	DefaultConcurrency = 4
	// DefaultSource is the events' source when none is set.
	DefaultSource = "import"
)

// Options configure Run. The zero value of every field but Format (and
// Mapping for FormatCSV) is a sensible default.
type Options struct {
	// Format is the file layout.
	Format Format
	// Mapping maps CSV columns to roles; only for FormatCSV.
	Mapping Mapping
	// CustomerPrefix is put before every customer id of the file, to keep
	// the ids of two data sources apart in one tenant ("cdnow:" + "00001").
	CustomerPrefix string
	// Source is the events' source, telling imported records from live ones;
	// empty is "import".
	Source string
	// BatchSize is the number of items per call, 1 to 1000; 0 is 500.
	BatchSize int
	// Concurrency is the number of calls in flight; 0 is 4.
	Concurrency int
	// Progress receives the progress bar, and only when IsTerminal is set:
	// a bar redrawn with \r is noise in a log file. Nil draws nothing.
	Progress io.Writer
	// IsTerminal says Progress is a terminal; see Terminal.
	IsTerminal bool
	// Clock is the time source; nil is the system clock.
	Clock Clock
}

// Terminal reports whether f is a terminal, which decides whether to draw
// the progress bar on it.
func Terminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func (o Options) withDefaults() (Options, error) {
	switch o.Format {
	case FormatCDNOWMaster, FormatCDNOWSample:
	case FormatCSV:
		if err := o.Mapping.Validate(); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("unknown format %q (want %s, %s or %s)", o.Format, FormatCDNOWMaster, FormatCDNOWSample, FormatCSV)
	}
	if o.CustomerPrefix != "" && !validCustomerID(o.CustomerPrefix) {
		return o, fmt.Errorf("customer prefix %q: only A-Z a-z 0-9 . _ : - are allowed in customer ids", o.CustomerPrefix)
	}
	if o.BatchSize < 0 || o.BatchSize > MaxBatchSize {
		return o, fmt.Errorf("batch size %d: want 1 to %d", o.BatchSize, MaxBatchSize)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Concurrency < 0 {
		return o, fmt.Errorf("concurrency %d: want at least 1", o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if !o.IsTerminal {
		o.Progress = nil
	}
	return o, nil
}

// Run imports the file r into the profile service behind client, whose
// calls must already carry the tenant. Rows that cannot be imported are
// rejections in the summary, never a failure of the run; Run fails for an
// unusable mapping (before anything is sent, wrapping ErrMapping), an
// unreadable file, or a service that keeps refusing whole calls. Once the
// file is read it returns the summary even when it fails, so the caller can
// tell how far it got; running it again is always safe.
func Run(ctx context.Context, client profilev1.ProfileServiceClient, r io.Reader, opts Options) (*Summary, error) {
	return newRunner(client, opts).run(ctx, r)
}

// runner is one import.
type runner struct {
	client   profilev1.ProfileServiceClient
	opts     Options
	optsErr  error
	sleep    func(context.Context, time.Duration) error // the retry backoff, replaced in tests
	progress *progress
}

func newRunner(client profilev1.ProfileServiceClient, opts Options) *runner {
	opts, err := opts.withDefaults()
	return &runner{client: client, opts: opts, optsErr: err, sleep: sleepCtx}
}

func (ru *runner) run(ctx context.Context, r io.Reader) (*Summary, error) {
	if ru.optsErr != nil {
		return nil, ru.optsErr
	}
	start := ru.opts.Clock.Now()
	var p parsed
	var err error
	switch ru.opts.Format {
	case FormatCDNOWMaster:
		err = readCDNOW(r, false, ru.opts.CustomerPrefix, &p)
	case FormatCDNOWSample:
		err = readCDNOW(r, true, ru.opts.CustomerPrefix, &p)
	case FormatCSV:
		err = readCSV(r, ru.opts.Mapping, ru.opts.CustomerPrefix, &p)
	}
	if err != nil {
		return nil, err
	}
	pl := buildPlan(ru.opts.Format, &p)
	ru.progress = newProgress(ru.opts.Progress, ru.opts.Clock, pl.read)
	ru.progress.add(len(pl.rejected))

	sum := &Summary{Format: ru.opts.Format}
	err = ru.load(ctx, pl, sum)
	ru.progress.finish()
	sum.tally(pl)
	sum.Elapsed = ru.opts.Clock.Now().Sub(start)
	return sum, err
}

// load creates the customers, then the purchases, then the refunds: a
// refund is valid only once its purchase is stored, and waiting for every
// purchase is the simplest order that guarantees it with batches in flight.
func (ru *runner) load(ctx context.Context, pl *plan, sum *Summary) error {
	failed, err := ru.ensureCustomers(ctx, pl.customers, sum)
	if err != nil {
		return err
	}
	purchases := ru.dropFailed(pl.purchases, failed, func(*event) string { return "" })
	if err := ru.record(ctx, purchases); err != nil {
		return err
	}
	refunds := ru.dropFailed(pl.refunds, failed, func(e *event) string {
		if o := e.purchase.outcome; o != created && o != present {
			return reasonPurchaseLost
		}
		return ""
	})
	return ru.record(ctx, refunds)
}

// dropFailed rejects the events that cannot succeed, because their customer
// could not be created or for the reason check gives, and returns the rest.
func (ru *runner) dropFailed(events []*event, failedCustomers map[string]string, check func(*event) string) []*event {
	keep := events[:0:0]
	for _, e := range events {
		reason, ok := failedCustomers[e.customer]
		if !ok {
			reason = check(e)
		}
		if reason != "" {
			e.outcome, e.reason = rejected, reason
			ru.progress.add(len(e.rows))
			continue
		}
		keep = append(keep, e)
	}
	return keep
}
