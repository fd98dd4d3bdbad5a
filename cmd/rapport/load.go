package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"rapport.dev/cmd/rapport/internal/loadtest"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/heapfloor"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/tenancy"
)

const loadUsage = `usage: rapport load [flags]

For each phase, starts the suite in this process as "rapport serve" runs it
(the profile service and the gateway by default, on loopback ports, over a
fresh folder of the data dir), seeds tenant "bench" with customers, and runs
the phase against a baseline measured in the same run, on the same disk, at
the same concurrency, with fsync on. Every phase starts from the same state,
whichever ran before it:

  write  RecordEvent over gRPC, one purchase per call
         vs one bbolt transaction (Update + Put + fsync) per write
         target: at least 10,000 events/s
  batch  BatchRecordEvents over gRPC, 1000 events per call
         vs bbolt transactions of 1000 puts of 300-byte values,
         as many callers (keys: see --baseline-keys)
         target: at least 0.5x the raw puts/s
  get    GetCustomer through the REST gateway
         vs the gateway's /healthz
         target: at least 0.6x the trivial endpoint's requests/s
  earn   loyalty Earn over gRPC, one purchase per call (the programme's
         rules, a lot, the idempotency key and the feed in one durable
         transaction), over the seeded customers enrolled in a programme;
         the loyalty service is started for it
         vs one bbolt transaction (Update + Put + fsync) per write
         target: at least 10,000 earns/s

Each phase and each baseline warms up for --warmup, unrecorded, then runs for
--duration or --max-ops calls, whichever comes first. Latencies are per call.
The exit status is 1 when an operation failed, not when a target is missed.

--targets=all adds the services that follow the profile feed (segmentation).
Their catch-up work then runs during the baselines too, which lowers them:
the ratios flatter the suite. Compare ratios of the default targets.

flags:
`

// Phases, in the order they run.
const (
	loadPhaseWrite = "write"
	loadPhaseBatch = "batch"
	loadPhaseGet   = "get"
	loadPhaseEarn  = "earn"
)

var loadPhases = []string{loadPhaseWrite, loadPhaseBatch, loadPhaseGet, loadPhaseEarn}

const (
	// loadTenant owns everything the load writes.
	loadTenant = "bench"
	// loadBatchSize is the events per BatchRecordEvents call and the puts per
	// baseline transaction; it is the service's limit (domain.MaxBatch).
	loadBatchSize = 1000
	// loadValueSize is the baseline's value size, about a purchase event's JSON.
	loadValueSize = 300
)

// Key layouts of the bbolt baselines.
const (
	keysSpread     = "spread"
	keysSequential = "sequential"
)

// loadConfig is the configuration of `rapport load`.
type loadConfig struct {
	Duration     time.Duration
	Warmup       time.Duration
	Concurrency  int
	BatchCallers int
	Customers    int
	MaxOps       int64
	Targets      string
	DataDir      string
	Phases       string
	BaselineKeys string
	JSON         bool
	CPUProfile   string
	// GCHeapFloorMiB is serve's --gc-heap-floor, for the suite and the
	// baselines alike (they share the process).
	GCHeapFloorMiB int

	phases []string
}

// Validate checks the config and resolves the phase list.
func (c *loadConfig) Validate() error {
	var errs []error
	c.phases = nil
	for _, p := range strings.Split(c.Phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case !slices.Contains(loadPhases, p):
			errs = append(errs, fmt.Errorf("--phases: unknown phase %q (%s)", p, strings.Join(loadPhases, ", ")))
		case !slices.Contains(c.phases, p):
			c.phases = append(c.phases, p)
		}
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if c.Warmup < 0 {
		errs = append(errs, errors.New("--warmup must not be negative"))
	}
	if c.Concurrency < 1 || c.BatchCallers < 1 {
		errs = append(errs, errors.New("--concurrency and --batch-callers must be at least 1"))
	}
	if c.Customers < 1 {
		errs = append(errs, errors.New("--customers must be at least 1"))
	}
	if c.BaselineKeys != keysSpread && c.BaselineKeys != keysSequential {
		errs = append(errs, fmt.Errorf("--baseline-keys: %q is not %s or %s", c.BaselineKeys, keysSpread, keysSequential))
	}
	if c.MaxOps < 1 {
		errs = append(errs, errors.New("--max-ops must be at least 1"))
	}
	if c.GCHeapFloorMiB < 0 {
		errs = append(errs, errors.New("--gc-heap-floor must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *loadConfig) runs(phase string) bool { return slices.Contains(c.phases, phase) }

// parseLoad reads the flags of `rapport load`. They are not bound to
// RAPPORT_* variables: a benchmark must not pick up a server's data dir from
// the environment.
func parseLoad(args []string, output io.Writer) (loadConfig, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() { fmt.Fprint(fs.Output(), loadUsage); fs.PrintDefaults() }
	var cfg loadConfig
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time of each phase and of each baseline")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unrecorded warm-up before each measurement")
	fs.IntVar(&cfg.Concurrency, "concurrency", 50, "calls in flight in the write and get phases")
	fs.IntVar(&cfg.BatchCallers, "batch-callers", 4, "calls in flight in the batch phase")
	fs.IntVar(&cfg.Customers, "customers", 10000, "customers seeded in tenant \""+loadTenant+"\"")
	fs.Int64Var(&cfg.MaxOps, "max-ops", 5_000_000, "most calls per measurement (bounds the latency record)")
	fs.StringVar(&cfg.Targets, "targets", targetProfile+","+targetGateway, "components to run, as for serve --target; the load needs "+targetProfile+" and "+targetGateway)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "empty or new folder for the databases, kept afterwards (default: a temporary folder, removed)")
	fs.StringVar(&cfg.Phases, "phases", strings.Join(loadPhases, ","), "phases to run: a comma list of "+strings.Join(loadPhases, ", "))
	fs.StringVar(&cfg.BaselineKeys, "baseline-keys", keysSpread, "keys of the bbolt baselines: "+keysSpread+
		" (tenant, customer, sequence: the B+tree places the service writes events in) or "+keysSequential+" (appends, the fastest bbolt can go)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (client, suite and baselines) to this file")
	fs.IntVar(&cfg.GCHeapFloorMiB, "gc-heap-floor", defaultGCHeapFloorMiB, gcHeapFloorUsage+"; as serve's")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

func loadCmd(ctx context.Context, args []string) error {
	cfg, err := parseLoad(args, os.Stderr)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(os.Stderr, slog.LevelWarn, false)
	defer heapfloor.Start(uint64(cfg.GCHeapFloorMiB) << 20).Stop()
	stop, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer stop()
	rep, err := runLoad(ctx, cfg, log, os.Stderr)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if cfg.JSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		return err
	}
	for _, p := range rep.Phases {
		if p.Measured.Errors > 0 || p.Baseline.Errors > 0 {
			return fmt.Errorf("load: phase %s had failed operations", p.Name)
		}
	}
	return nil
}

// runLoad prepares the data dir, starts the suite, seeds it and runs the
// configured phases, reporting progress to progress.
func runLoad(ctx context.Context, cfg loadConfig, log *slog.Logger, progress io.Writer) (rep loadtest.Report, err error) {
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rapport-load-"); err != nil {
			return rep, err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	} else if err := emptyLoadDir(dir); err != nil {
		return rep, err
	}
	// API keys need the access service.
	targets := cfg.Targets
	if targets != targetAll && !slices.Contains(strings.Split(targets, ","), targetAccess) {
		targets = targetAccess + "," + targets
	}
	rep = loadtest.Report{
		Machine: loadtest.ThisMachine(),
		Settings: []loadtest.Setting{
			{Name: "duration", Value: cfg.Duration.String()},
			{Name: "warm-up", Value: cfg.Warmup.String()},
			{Name: "concurrency", Value: strconv.Itoa(cfg.Concurrency)},
			{Name: "batch callers", Value: strconv.Itoa(cfg.BatchCallers)},
			{Name: "customers", Value: strconv.Itoa(cfg.Customers)},
			{Name: "targets", Value: targets},
			{Name: "baseline keys", Value: cfg.BaselineKeys},
			{Name: "gc heap floor", Value: strconv.Itoa(cfg.GCHeapFloorMiB) + " MiB"},
			{Name: "data dir", Value: dir},
		},
	}

	for _, name := range loadPhases {
		if !cfg.runs(name) {
			continue
		}
		t := targets
		// Earn needs loyalty; the other phases run without it, since it
		// follows the profile feed and would take CPU from them.
		if name == loadPhaseEarn && !slices.Contains(strings.Split(t, ","), targetLoyalty) && t != targetAll {
			t += "," + targetLoyalty
		}
		ph, err := runLoadPhase(ctx, cfg, name, t, filepath.Join(dir, name), log, progress)
		if err != nil {
			return rep, fmt.Errorf("phase %s: %w", name, err)
		}
		rep.Phases = append(rep.Phases, ph)
	}
	return rep, nil
}

// runLoadPhase starts a suite of its own over dir, seeds it, and runs one
// phase against it. Each phase starts from the same state, whatever ran
// before it: a phase on a file that an earlier phase filled would be
// measured against a baseline on a fresh one.
func runLoadPhase(ctx context.Context, cfg loadConfig, phase, targets, dir string, log *slog.Logger, progress io.Writer) (ph loadtest.Phase, err error) {
	if err := os.Mkdir(dir, 0o750); err != nil {
		return ph, err
	}
	s, err := startLoadSuite(ctx, targets, dir, log)
	if err != nil {
		return ph, err
	}
	defer func() { err = errors.Join(err, s.stop()) }()
	fmt.Fprintf(progress, "phase %s: suite up: %v; seeding %d customers\n", phase, s.urls, cfg.Customers)

	cc, err := dialLoad(s.grpcAddr(targetProfile))
	if err != nil {
		return ph, err
	}
	defer cc.Close()
	client := profilev1.NewProfileServiceClient(cc)
	key, err := tenantAdminKey(ctx, s.grpcAddr(targetAccess), dir, loadTenant, 1e6)
	if err != nil {
		return ph, err
	}
	tctx := metadata.AppendToOutgoingContext(auth.WithKey(ctx, key), tenancy.MetadataKey, loadTenant)
	ids, err := seedLoadCustomers(tctx, client, cfg.Customers)
	if err != nil {
		return ph, err
	}
	w := &loadWorkload{
		cfg:       cfg,
		dir:       dir,
		client:    client,
		customers: ids,
		key:       key,
		base:      time.Now().UTC().Truncate(time.Second),
	}
	fmt.Fprintf(progress, "phase %s: baseline, then the suite (%s + %s each)\n", phase, cfg.Warmup, cfg.Duration)
	switch phase {
	case loadPhaseWrite:
		return w.write(tctx)
	case loadPhaseBatch:
		return w.batch(tctx)
	case loadPhaseGet:
		return w.get(tctx, s.urls[targetGateway])
	case loadPhaseEarn:
		return w.earn(tctx, s.grpcAddr(targetLoyalty))
	}
	return ph, fmt.Errorf("unknown phase %q", phase)
}

// emptyLoadDir creates dir or checks that it is empty: every phase compares the
// suite with a baseline on a fresh file, and a used database is not fresh.
func emptyLoadDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("--data-dir %s is not empty; the benchmark needs fresh databases", dir)
	}
	return nil
}

// loadSuite is the suite running in this process as `rapport serve` runs
// it (runSuite, so the wiring measured is the wiring shipped), on loopback
// ports.
type loadSuite struct {
	// urls maps each component to the URL runSuite printed for it.
	urls   map[string]string
	cancel context.CancelFunc
	done   chan error
}

// startLoadSuite starts the targets over dir and waits until every one of
// them has printed its URL, that is until every listener is open.
func startLoadSuite(ctx context.Context, targets, dir string, log *slog.Logger) (*loadSuite, error) {
	cfg := serveConfig{
		Targets:     targets,
		DataDir:     dir,
		ProfileAddr: "127.0.0.1:0",
		SegmentAddr: "127.0.0.1:0",
		LoyaltyAddr: "127.0.0.1:0",
		CareAddr:    "127.0.0.1:0",
		AccessAddr:  "127.0.0.1:0",
		HTTPAddr:    "127.0.0.1:0",
		LogFormat:   "text",
		LogLevel:    "warn",
		Grace:       10 * time.Second,
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.runs(targetProfile) || !cfg.runs(targetGateway) {
		return nil, fmt.Errorf("--targets %q: the load needs %s and %s", targets, targetProfile, targetGateway)
	}
	urls := &urlWriter{want: cfg.targets, urls: map[string]string{}, ready: make(chan struct{})}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &loadSuite{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- runSuite(sctx, cfg, log, urls) }()
	select {
	case <-urls.ready:
		s.urls = urls.urls
		return s, nil
	case err := <-s.done:
		cancel()
		return nil, fmt.Errorf("starting the suite: %w", errors.Join(err, errors.New("it stopped before printing its URLs")))
	}
}

// stop shuts the suite down in runSuite's order and returns its error.
func (s *loadSuite) stop() error {
	s.cancel()
	return <-s.done
}

// grpcAddr is the host:port of a gRPC component.
func (s *loadSuite) grpcAddr(component string) string {
	return strings.TrimPrefix(s.urls[component], "grpc://")
}

// urlWriter reads the URLs runSuite prints ("  profile  grpc://127.0.0.1:7101
// ...") and closes ready once every wanted component has one.
type urlWriter struct {
	mu      sync.Mutex
	pending []byte
	want    []string
	urls    map[string]string
	ready   chan struct{}
	closed  bool
}

var urlLinePattern = regexp.MustCompile(`^\s+(\w+)\s+(\w+://\S+)`)

func (w *urlWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		if m := urlLinePattern.FindSubmatch(w.pending[:i]); m != nil {
			w.urls[string(m[1])] = string(m[2])
		}
		w.pending = w.pending[i+1:]
	}
	if !w.closed && w.complete() {
		w.closed = true
		close(w.ready)
	}
	return len(p), nil
}

// complete reports whether every wanted component has its URL.
func (w *urlWriter) complete() bool {
	for _, c := range w.want {
		if w.urls[c] == "" {
			return false
		}
	}
	return true
}

// seedLoadCustomers creates n customers in batches and returns their ids.
func seedLoadCustomers(ctx context.Context, client profilev1.ProfileServiceClient, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c-%06d", i)
	}
	for lo := 0; lo < n; lo += loadBatchSize {
		req := &profilev1.BatchCreateCustomersRequest{}
		for i, id := range ids[lo:min(lo+loadBatchSize, n)] {
			req.Customers = append(req.Customers, &profilev1.Customer{
				CustomerId:  id,
				Kind:        profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
				DisplayName: "Customer " + id,
				Person: &profilev1.Person{GivenName: "Given" + strconv.Itoa(lo+i), FamilyName: "Family",
					Gender: profilev1.Gender_GENDER_UNDISCLOSED},
				Email:    id + "@example.com",
				Phone:    fmt.Sprintf("+3361%07d", lo+i),
				Region:   &profilev1.Region{Country: "FR", City: "Lyon"},
				Tags:     []string{"bench", "seeded"},
				TimeZone: "Europe/Paris",
				Language: "fr",
			})
		}
		resp, err := client.BatchCreateCustomers(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("seeding customers: %w", err)
		}
		for i, r := range resp.GetResults() {
			if r.GetStatus().GetCode() != 0 {
				return nil, fmt.Errorf("seeding customer %s: %s", ids[lo+i], r.GetStatus().GetMessage())
			}
		}
	}
	return ids, nil
}

// loadWorkload is what the phases share.
type loadWorkload struct {
	cfg       loadConfig
	dir       string
	client    profilev1.ProfileServiceClient
	customers []string
	// key is the tenant's API key.
	key string
	// base is the latest occur time of the events; they go back 90 days.
	base time.Time
}

func (w *loadWorkload) options(concurrency int) loadtest.Options {
	return loadtest.Options{Concurrency: concurrency, Duration: w.cfg.Duration, MaxOps: w.cfg.MaxOps, Warmup: w.cfg.Warmup}
}

// customer spreads the n-th event over the seeded customers.
func (w *loadWorkload) customer(n int64) int { return int(n % int64(len(w.customers))) }

// purchase is the n-th event of the run: a purchase of one line item, about
// 300 bytes once stored as JSON.
func (w *loadWorkload) purchase(id string, n int64) *profilev1.Event {
	price := 500 + n%9500
	return &profilev1.Event{
		EventId:    id,
		CustomerId: w.customers[w.customer(n)],
		OccurTime:  timestamppb.New(w.base.Add(-time.Duration(n%(90*24*3600)) * time.Second)),
		Source:     "rapport-load",
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{
			OrderId: id,
			Amount:  &typev1.Money{AmountMinor: 2 * price, Currency: "EUR"},
			Channel: profilev1.SalesChannel_SALES_CHANNEL_ONLINE,
			StoreId: "web-eu",
			Items: []*profilev1.LineItem{{
				Sku: "SKU-" + strconv.FormatInt(n%5000, 10), Name: "Album", Category: "music",
				Quantity: 2, UnitPrice: &typev1.Money{AmountMinor: price, Currency: "EUR"},
			}},
		}},
	}
}

// checkLoadRecorded fails unless every result says the event was created.
func checkLoadRecorded(rs []*profilev1.RecordEventResult, want int) error {
	if len(rs) != want {
		return fmt.Errorf("%d results for %d events", len(rs), want)
	}
	for i, r := range rs {
		if r.GetStatus().GetCode() != 0 || !r.GetCreated() {
			return fmt.Errorf("event %d not created: code %d: %s", i, r.GetStatus().GetCode(), r.GetStatus().GetMessage())
		}
	}
	return nil
}

// write: RecordEvent, one purchase per call, against one bbolt transaction
// per write.
func (w *loadWorkload) write(ctx context.Context) (loadtest.Phase, error) {
	opts := w.options(w.cfg.Concurrency)
	base, err := w.baseline(ctx, "baseline-write.db", opts, 1)
	if err != nil {
		return loadtest.Phase{}, err
	}
	res, err := loadtest.Run(ctx, opts, func(ctx context.Context, _ int, seq int64) error {
		id := "w-" + strconv.FormatInt(seq, 10)
		resp, err := w.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: w.purchase(id, seq)})
		if err != nil {
			return err
		}
		if !resp.GetCreated() {
			return fmt.Errorf("event %s: not created", id)
		}
		return nil
	})
	if err != nil {
		return loadtest.Phase{}, err
	}
	m := loadtest.Measure("RecordEvent over gRPC, 1 purchase/call", "events", 1, res)
	return loadtest.NewPhase(loadPhaseWrite, m, base, loadtest.Target{MinPerSecond: 10_000}), nil
}

// batch: BatchRecordEvents of 1000 purchases, against bbolt transactions of
// 1000 puts.
func (w *loadWorkload) batch(ctx context.Context) (loadtest.Phase, error) {
	opts := w.options(w.cfg.BatchCallers)
	base, err := w.baseline(ctx, "baseline-batch.db", opts, loadBatchSize)
	if err != nil {
		return loadtest.Phase{}, err
	}
	res, err := loadtest.Run(ctx, opts, func(ctx context.Context, _ int, seq int64) error {
		req := &profilev1.BatchRecordEventsRequest{Events: make([]*profilev1.Event, loadBatchSize)}
		prefix := "b-" + strconv.FormatInt(seq, 10) + "-"
		for i := range req.Events {
			req.Events[i] = w.purchase(prefix+strconv.Itoa(i), seq*loadBatchSize+int64(i))
		}
		resp, err := w.client.BatchRecordEvents(ctx, req, grpc.MaxCallRecvMsgSize(64<<20))
		if err != nil {
			return err
		}
		return checkLoadRecorded(resp.GetResults(), loadBatchSize)
	})
	if err != nil {
		return loadtest.Phase{}, err
	}
	m := loadtest.Measure(fmt.Sprintf("BatchRecordEvents over gRPC, %d/call", loadBatchSize), "events", loadBatchSize, res)
	return loadtest.NewPhase(loadPhaseBatch, m, base, loadtest.Target{MinRatio: 0.5}), nil
}

// baseline measures raw bbolt on a fresh file in the data dir, with the
// options the service's file has but without group commit: each operation
// is one Update, putting perTx values of loadValueSize bytes, fsynced at commit.
// With spread keys (the default) the keys are laid out like the service's
// events (tenant, customer, sequence) and spread over the same customers, so
// the B+tree is written in the same places; sequential keys only append,
// which is bbolt's best case and several times faster for large transactions.
func (w *loadWorkload) baseline(ctx context.Context, file string, opts loadtest.Options, perTx int) (loadtest.Measurement, error) {
	path := filepath.Join(w.dir, file)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return loadtest.Measurement{}, err
	}
	defer os.Remove(path)
	defer db.Close()
	bucket := []byte("events")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		return loadtest.Measurement{}, err
	}
	value := make([]byte, loadValueSize)
	for i := range value {
		value[i] = byte(rand.IntN(256))
	}
	res, err := loadtest.Run(ctx, opts, func(_ context.Context, _ int, seq int64) error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			for i := range perTx {
				n := seq*int64(perTx) + int64(i)
				if err := b.Put(w.rawKey(n), value); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return loadtest.Measurement{}, err
	}
	what := "bbolt Update+Put+fsync, 1 put/tx"
	if perTx > 1 {
		what = fmt.Sprintf("bbolt Update+fsync, %d puts/tx", perTx)
	}
	return loadtest.Measure(what, "puts", perTx, res), nil
}

// rawKey is the n-th baseline key: tenant 0 customer 0 n, the shape of an
// event key, or n alone.
func (w *loadWorkload) rawKey(n int64) []byte {
	if w.cfg.BaselineKeys == keysSequential {
		return boltdb.U64(uint64(n))
	}
	return boltdb.Key(loadTenant, w.customers[w.customer(n)], boltdb.U64(uint64(n)))
}

// get: GetCustomer through the REST gateway against the gateway's /healthz,
// both with one keep-alive HTTP client.
func (w *loadWorkload) get(ctx context.Context, baseURL string) (loadtest.Phase, error) {
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        w.cfg.Concurrency,
		MaxIdleConnsPerHost: w.cfg.Concurrency,
		IdleConnTimeout:     time.Minute,
	}}
	defer hc.CloseIdleConnections()
	opts := w.options(w.cfg.Concurrency)
	fetch := func(url func(seq int64) string) loadtest.Op {
		return func(ctx context.Context, _ int, seq int64) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url(seq), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+w.key)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || n == 0 {
				return fmt.Errorf("GET %s: %s, %d bytes", req.URL.Path, resp.Status, n)
			}
			return nil
		}
	}
	// Customers are read in a scattered order, not the order they were
	// written in.
	stride := int64(7919) // prime, so every customer is visited
	// Both endpoints are served by the same process on the same two cores:
	// they take turns, so that they meet the same neighbours' load.
	res, err := loadtest.Interleave(ctx, opts, getRounds(w.cfg.Duration),
		fetch(func(int64) string { return baseURL + "/healthz" }),
		fetch(func(seq int64) string { return baseURL + "/v1/customers/" + w.customers[w.customer(seq*stride)] }))
	if err != nil {
		return loadtest.Phase{}, err
	}
	base := loadtest.Measure("GET /healthz (trivial endpoint)", "requests", 1, res[0])
	m := loadtest.Measure("GET /v1/customers/{id} via gateway", "requests", 1, res[1])
	return loadtest.NewPhase(loadPhaseGet, m, base, loadtest.Target{MinRatio: 0.6}), nil
}

// dialLoad dials the suite as a benchmark client (ghz, wrk) does: without the
// suite's telemetry handler and tenancy interceptor, whose cost in this
// process would be counted against the servers being measured. The tenant
// and the key travel as metadata the workload's context carries from the
// start.
func dialLoad(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// getRounds is how many turns each endpoint of the get phase takes: one a
// second of the duration, and no turn shorter than half a second.
func getRounds(d time.Duration) int {
	return max(1, min(int(d/time.Second), int(d/(500*time.Millisecond))))
}

// earn: loyalty Earn, one purchase per call, against one bbolt transaction
// per write. The seeded customers are enrolled in a programme first.
func (w *loadWorkload) earn(ctx context.Context, addr string) (loadtest.Phase, error) {
	cc, err := dialLoad(addr)
	if err != nil {
		return loadtest.Phase{}, err
	}
	defer cc.Close()
	client := loyaltyv1.NewLoyaltyServiceClient(cc)
	if _, err := client.CreateProgram(ctx, &loyaltyv1.CreateProgramRequest{Program: &loyaltyv1.Program{
		ProgramId: "bench", DisplayName: "Bench", Currency: "EUR", PointsPerUnit: 1, Enrollment: loyaltyv1.Enrollment_ENROLLMENT_EXPLICIT,
		Expiry: loyaltyv1.ExpiryPolicy_EXPIRY_POLICY_AFTER_MONTHS, ExpiryMonths: 24, ReturnWindowDays: 14,
		Tiers: []*loyaltyv1.Tier{{TierId: "member"}, {TierId: "gold", Threshold: 50_000, Multiplier: 1.5}},
	}}); err != nil {
		return loadtest.Phase{}, err
	}
	enroll, err := loadtest.Run(ctx, loadtest.Options{Concurrency: w.cfg.Concurrency, MaxOps: int64(len(w.customers)), Duration: time.Hour},
		func(ctx context.Context, _ int, seq int64) error {
			_, err := client.EnrollMember(ctx, &loyaltyv1.EnrollMemberRequest{ProgramId: "bench", CustomerId: w.customers[seq]})
			return err
		})
	if err := errors.Join(err, enroll.Err()); err != nil {
		return loadtest.Phase{}, fmt.Errorf("enrolling: %w", err)
	}
	opts := w.options(w.cfg.Concurrency)
	base, err := w.baseline(ctx, "baseline-earn.db", opts, 1)
	if err != nil {
		return loadtest.Phase{}, err
	}
	res, err := loadtest.Run(ctx, opts, func(ctx context.Context, _ int, seq int64) error {
		key := "e-" + strconv.FormatInt(seq, 10)
		_, err := client.Earn(ctx, &loyaltyv1.EarnRequest{ProgramId: "bench", CustomerId: w.customers[w.customer(seq)], IdempotencyKey: key,
			Purchase: &loyaltyv1.EarnPurchase{OrderId: key, Amount: &typev1.Money{AmountMinor: 1000 + seq%9000, Currency: "EUR"}}})
		return err
	})
	if err != nil {
		return loadtest.Phase{}, err
	}
	m := loadtest.Measure("loyalty Earn over gRPC, 1 purchase/call", "earns", 1, res)
	return loadtest.NewPhase(loadPhaseEarn, m, base, loadtest.Target{MinPerSecond: 10_000}), nil
}
