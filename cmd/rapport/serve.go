package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	testingv1 "rapport.dev/gen/go/rapport/testing/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/config"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/heapfloor"
	"rapport.dev/platform/shutdown"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/testclock"
	"rapport.dev/services/access"
	"rapport.dev/services/care"
	"rapport.dev/services/gateway"
	"rapport.dev/services/loyalty"
	"rapport.dev/services/profile"
	"rapport.dev/services/segmentation"
)

// Components, in start order; the gateway comes last and stops first.
const (
	targetAll          = "all"
	targetAccess       = access.Name
	targetProfile      = profile.Name
	targetSegmentation = segmentation.Name
	targetLoyalty      = loyalty.Name
	targetCare         = care.Name
	targetGateway      = "gateway"
)

var components = []string{targetAccess, targetProfile, targetSegmentation, targetLoyalty, targetCare, targetGateway}

// serveConfig is the configuration of `rapport serve`.
type serveConfig struct {
	Targets     string
	DataDir     string
	ProfileAddr string
	SegmentAddr string
	LoyaltyAddr string
	CareAddr    string
	AccessAddr  string
	// ServiceSecretFile holds the secret signing service-to-service tokens.
	ServiceSecretFile string
	HTTPAddr          string
	// MetricsAddr is where the process serves /metrics; empty disables it.
	MetricsAddr string
	// CareWebhookSecret signs care's automatic messages.
	CareWebhookSecret string
	FakeClock         string
	LogFormat         string
	LogLevel          string
	Grace             time.Duration
	// GCHeapFloorMiB is the heap size, in MiB, under which the garbage
	// collector does not run (package heapfloor); 0 leaves GOGC alone.
	GCHeapFloorMiB int

	targets []string
	level   slog.Level
	clock   clock.Clock
}

// Validate checks the config and resolves the target list.
func (c *serveConfig) Validate() error {
	var errs []error
	for _, t := range strings.Split(c.Targets, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == targetAll:
			c.targets = append(c.targets, components...)
		case slices.Contains(components, t):
			c.targets = append(c.targets, t)
		default:
			errs = append(errs, fmt.Errorf("--target: unknown target %q (all, %s)", t, strings.Join(components, ", ")))
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format: %q is not json or text", c.LogFormat))
	}
	if err := c.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if c.GCHeapFloorMiB < 0 {
		errs = append(errs, errors.New("--gc-heap-floor must not be negative"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	c.clock = clock.Real{}
	if c.FakeClock != "" {
		t, err := time.Parse(time.RFC3339, c.FakeClock)
		if err != nil {
			errs = append(errs, fmt.Errorf("--fake-clock: %q is not an RFC 3339 time", c.FakeClock))
		}
		c.clock = clock.NewFake(t)
	}
	return errors.Join(errs...)
}

// defaultGCHeapFloorMiB: the suite keeps a few MiB live (records are in the
// mmap'd bbolt files), so at GOGC=100 a write load collects about fifty times
// a second; a 64 MiB floor cuts that about tenfold for 64 MiB of heap.
const defaultGCHeapFloorMiB = 64

const gcHeapFloorUsage = "heap size in MiB under which the garbage collector does not run; 0 leaves GOGC alone (GOMEMLIMIT still caps the heap)"

func (c *serveConfig) runs(target string) bool { return slices.Contains(c.targets, target) }

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg serveConfig
	b := config.New(fs, "RAPPORT_")
	b.String(&cfg.Targets, "target", targetAll, "components to run: all, or a comma list of "+strings.Join(components, ", "))
	b.String(&cfg.DataDir, "data-dir", "./data", "folder of the bbolt files, one per service")
	b.String(&cfg.ProfileAddr, "profile-addr", "127.0.0.1:7101", "gRPC address of the profile service (listen, or dial from the gateway)")
	b.String(&cfg.SegmentAddr, "segmentation-addr", "127.0.0.1:7102", "gRPC address of the segmentation service (listen, or dial from the gateway)")
	b.String(&cfg.LoyaltyAddr, "loyalty-addr", "127.0.0.1:7103", "gRPC address of the loyalty service (listen, or dial from the gateway)")
	b.String(&cfg.CareAddr, "care-addr", "127.0.0.1:7104", "gRPC address of the care service (listen, or dial from the gateway)")
	b.String(&cfg.AccessAddr, "access-addr", "127.0.0.1:7105", "gRPC address of the access service: API keys (listen, or dial from every other component)")
	b.String(&cfg.ServiceSecretFile, "service-secret-file", "", "file holding the secret that signs calls between the suite's services; every process of a suite needs the same. Default: <data-dir>/service.secret, created when missing")
	b.String(&cfg.CareWebhookSecret, "care-webhook-secret", "", "secret signing care's automatic messages (X-Rapport-Signature); empty: message plans' messages are dropped with a warning")
	b.String(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP address of the REST gateway")
	b.String(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9090", "HTTP address of this process's Prometheus /metrics; empty disables it")
	b.String(&cfg.FakeClock, "fake-clock", "", "for tests: start every component on a fake clock at this RFC 3339 time, moved through /v1/testing/clock")
	b.String(&cfg.LogFormat, "log-format", "text", "log format: json or text")
	b.String(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	b.Duration(&cfg.Grace, "shutdown-grace", 10*time.Second, "time in-flight requests get to finish on shutdown")
	b.Int(&cfg.GCHeapFloorMiB, "gc-heap-floor", defaultGCHeapFloorMiB, gcHeapFloorUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(b.Err(), cfg.Validate()); err != nil {
		return err
	}
	defer heapfloor.Start(uint64(cfg.GCHeapFloorMiB) << 20).Stop()
	log := telemetry.NewLogger(os.Stderr, cfg.level, cfg.LogFormat == "json")
	return runSuite(ctx, cfg, log, os.Stdout)
}

// runner is one started component.
type runner struct {
	name string
	run  func(ctx context.Context) error
	url  string
}

// runSuite starts the configured components, prints their URLs to out once
// every listener is open, and stops them in reverse order when ctx ends.
func runSuite(ctx context.Context, cfg serveConfig, log *slog.Logger, out io.Writer) (err error) {
	// Until every component is started, a failure undoes what was built.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	var runners []runner
	// One meter provider for the process, whatever it runs: the components
	// tell their measurements apart by the rapport.component attribute.
	var meters *telemetry.Metrics
	var mp metric.MeterProvider
	if cfg.MetricsAddr != "" {
		name := "rapport"
		if len(cfg.targets) == 1 {
			name = "rapport-" + cfg.targets[0]
		}
		meters, err = telemetry.NewMetrics(telemetry.MetricsOptions{ServiceName: name})
		if err != nil {
			return err
		}
		undo = append(undo, func() { meters.Shutdown(context.Background()) })
		mp = meters.MeterProvider
		r, err := metricsRunner(cfg.MetricsAddr, meters.Handler, log)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}
	tele := map[string]*telemetry.Telemetry{}
	for _, name := range cfg.targets {
		t, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "rapport-" + name})
		if err != nil {
			return err
		}
		tele[name] = t
		undo = append(undo, func() { t.Shutdown(context.Background()) })
	}
	sec, err := newSecurity(cfg)
	if err != nil {
		return err
	}
	undo = append(undo, sec.close)
	// register adds the test clock to a service's server when it is fake.
	register := func(srv *grpcserver.Server) {
		if f, ok := cfg.clock.(*clock.Fake); ok {
			testingv1.RegisterClockServiceServer(srv, testclock.New(f))
		}
	}
	// The servers of the services in this process, which the gateway calls
	// in-process.
	var accessSrv, profileSrv, segmentSrv, loyaltySrv, careSrv *grpcserver.Server
	if cfg.runs(targetAccess) {
		// Keys are about real time (creation, rate limits), not the
		// business clock a test moves.
		svc, err := access.New(access.Config{DataDir: cfg.DataDir, ShutdownGrace: cfg.Grace},
			access.Deps{Logger: log, TracerProvider: tele[targetAccess].TracerProvider, MeterProvider: mp, Clock: clock.Real{}, Auth: sec.verifier(nil)})
		if err != nil {
			return err
		}
		undo = append(undo, func() { svc.Close() })
		sec.keys = svc.Keys()
		accessSrv = svc.Server()
		lis, err := net.Listen("tcp", cfg.AccessAddr)
		if err != nil {
			return fmt.Errorf("access: listen: %w", err)
		}
		cfg.AccessAddr = lis.Addr().String()
		runners = append(runners, runner{name: targetAccess, url: "grpc://" + cfg.AccessAddr,
			run: func(ctx context.Context) error { return svc.Serve(ctx, lis) }})
	} else if err := sec.dialAccess(cfg.AccessAddr, tele); err != nil {
		return err
	}
	if cfg.runs(targetProfile) {
		svc, err := profile.New(profile.Config{DataDir: cfg.DataDir, GRPCAddr: cfg.ProfileAddr, ShutdownGrace: cfg.Grace},
			profile.Deps{Logger: log, TracerProvider: tele[targetProfile].TracerProvider, MeterProvider: mp, Clock: cfg.clock,
				Auth: sec.verifier(sec.keys), Credentials: sec.credentials(targetProfile)})
		if err != nil {
			return err
		}
		undo = append(undo, func() { svc.Close() })
		register(svc.Server())
		profileSrv = svc.Server()
		lis, err := net.Listen("tcp", cfg.ProfileAddr)
		if err != nil {
			return fmt.Errorf("profile: listen: %w", err)
		}
		cfg.ProfileAddr = lis.Addr().String()
		runners = append(runners, runner{name: targetProfile, url: "grpc://" + cfg.ProfileAddr,
			run: func(ctx context.Context) error { return svc.Serve(ctx, lis) }})
	}
	if cfg.runs(targetSegmentation) {
		svc, err := segmentation.New(segmentation.Config{DataDir: cfg.DataDir, GRPCAddr: cfg.SegmentAddr,
			ProfileTarget: cfg.ProfileAddr, ShutdownGrace: cfg.Grace},
			segmentation.Deps{Logger: log, TracerProvider: tele[targetSegmentation].TracerProvider, MeterProvider: mp, Clock: cfg.clock,
				Auth: sec.verifier(sec.keys), Credentials: sec.credentials(targetSegmentation)})
		if err != nil {
			return err
		}
		undo = append(undo, func() { svc.Close() })
		register(svc.Server())
		segmentSrv = svc.Server()
		lis, err := net.Listen("tcp", cfg.SegmentAddr)
		if err != nil {
			return fmt.Errorf("segmentation: listen: %w", err)
		}
		cfg.SegmentAddr = lis.Addr().String()
		runners = append(runners, runner{name: targetSegmentation, url: "grpc://" + cfg.SegmentAddr,
			run: func(ctx context.Context) error { return svc.Serve(ctx, lis) }})
	}
	if cfg.runs(targetLoyalty) {
		// A segmentation address that names no port (":0") names no service
		// unless segmentation runs here and has resolved it.
		segTarget := cfg.SegmentAddr
		if strings.HasSuffix(segTarget, ":0") {
			segTarget = ""
		}
		svc, err := loyalty.New(loyalty.Config{DataDir: cfg.DataDir, GRPCAddr: cfg.LoyaltyAddr,
			ProfileTarget: cfg.ProfileAddr, SegmentationTarget: segTarget, ShutdownGrace: cfg.Grace},
			loyalty.Deps{Logger: log, TracerProvider: tele[targetLoyalty].TracerProvider, MeterProvider: mp, Clock: cfg.clock,
				Auth: sec.verifier(sec.keys), Credentials: sec.credentials(targetLoyalty)})
		if err != nil {
			return err
		}
		undo = append(undo, func() { svc.Close() })
		register(svc.Server())
		loyaltySrv = svc.Server()
		lis, err := net.Listen("tcp", cfg.LoyaltyAddr)
		if err != nil {
			return fmt.Errorf("loyalty: listen: %w", err)
		}
		cfg.LoyaltyAddr = lis.Addr().String()
		runners = append(runners, runner{name: targetLoyalty, url: "grpc://" + cfg.LoyaltyAddr,
			run: func(ctx context.Context) error { return svc.Serve(ctx, lis) }})
	}
	if cfg.runs(targetCare) {
		// As for loyalty: an address that names no port names no service
		// unless it runs here and has resolved it.
		optional := func(addr string) string {
			if strings.HasSuffix(addr, ":0") {
				return ""
			}
			return addr
		}
		svc, err := care.New(care.Config{DataDir: cfg.DataDir, GRPCAddr: cfg.CareAddr, ProfileTarget: cfg.ProfileAddr,
			SegmentationTarget: optional(cfg.SegmentAddr), LoyaltyTarget: optional(cfg.LoyaltyAddr),
			WebhookSecret: cfg.CareWebhookSecret, ShutdownGrace: cfg.Grace},
			care.Deps{Logger: log, TracerProvider: tele[targetCare].TracerProvider, MeterProvider: mp, Clock: cfg.clock,
				Auth: sec.verifier(sec.keys), Credentials: sec.credentials(targetCare)})
		if err != nil {
			return err
		}
		undo = append(undo, func() { svc.Close() })
		register(svc.Server())
		careSrv = svc.Server()
		lis, err := net.Listen("tcp", cfg.CareAddr)
		if err != nil {
			return fmt.Errorf("care: listen: %w", err)
		}
		cfg.CareAddr = lis.Addr().String()
		runners = append(runners, runner{name: targetCare, url: "grpc://" + cfg.CareAddr,
			run: func(ctx context.Context) error { return svc.Serve(ctx, lis) }})
	}
	if cfg.runs(targetGateway) {
		gw, err := gateway.New(ctx, gateway.Options{
			ProfileTarget: cfg.ProfileAddr, SegmentationTarget: cfg.SegmentAddr, LoyaltyTarget: cfg.LoyaltyAddr, CareTarget: cfg.CareAddr,
			AccessTarget: cfg.AccessAddr, AccessInProcess: accessSrv, RequireKeys: true,
			TestClock:        cfg.FakeClock != "",
			ProfileInProcess: profileSrv, SegmentationInProcess: segmentSrv, LoyaltyInProcess: loyaltySrv, CareInProcess: careSrv,
			Logger: log, TracerProvider: tele[targetGateway].TracerProvider, MeterProvider: mp, Clock: cfg.clock,
		})
		if err != nil {
			return err
		}
		undo = append(undo, func() { gw.Close() })
		lis, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("gateway: listen: %w", err)
		}
		runners = append(runners, runner{name: targetGateway, url: "http://" + lis.Addr().String(),
			run: func(ctx context.Context) error {
				defer gw.Close()
				return gw.Serve(ctx, lis)
			}})
	}

	// Every component gets its own context so they stop one by one, the
	// gateway first and the services after it.
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	all := make([]running, len(runners))
	failed := make(chan error, len(runners))
	var once sync.Once
	for i, r := range runners {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		all[i] = running{cancel, done}
		go func() {
			err := r.run(cctx)
			done <- err
			if err != nil {
				once.Do(func() { failed <- fmt.Errorf("%s: %w", r.name, err) })
			}
		}()
	}
	printURLs(out, cfg, runners)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}
	log.Info("shutting down")
	// The gateway stops first (HTTP drained), then each service (health
	// NOT_SERVING, gRPC graceful stop, bbolt closed), telemetry last so the
	// spans of the shutdown are flushed too.
	var seq shutdown.Sequence
	for i := len(all) - 1; i >= 0; i-- {
		seq.Add(runners[i].name, func(context.Context) error {
			all[i].cancel()
			if err := <-all[i].done; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	for _, name := range cfg.targets {
		seq.Add("telemetry "+name, tele[name].Shutdown)
	}
	if meters != nil {
		seq.Add("metrics", meters.Shutdown)
	}
	return errors.Join(runErr, seq.Run(2*cfg.Grace, log))
}

func printURLs(out io.Writer, cfg serveConfig, runners []runner) {
	fmt.Fprintf(out, "Rapport is up (target=%s, data in %s)\n", cfg.Targets, cfg.DataDir)
	for _, r := range runners {
		switch r.name {
		case targetGateway:
			fmt.Fprintf(out, "  %-12s %s   REST; OpenAPI at %s/openapi.json, health at %s/readyz\n", r.name, r.url, r.url, r.url)
		case metricsRunnerName:
			fmt.Fprintf(out, "  %-12s %s   Prometheus metrics of this process\n", r.name, r.url)
		default:
			fmt.Fprintf(out, "  %-12s %s   gRPC; try: grpcurl -plaintext %s list\n", r.name, r.url, strings.TrimPrefix(r.url, "grpc://"))
		}
	}
	if cfg.runs(targetAccess) {
		fmt.Fprintf(out, "API keys: the operator key is in %s; make a tenant's key with\n  rapport keys create --data-dir %s --access-addr %s --tenant demo --scopes admin\n",
			filepath.Join(cfg.DataDir, access.OperatorKeyFile), cfg.DataDir, cfg.AccessAddr)
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

// security is what a process needs to authenticate calls and to make them:
// the suite's service secret and the API keys' authenticator (the access
// service's key store when it runs here, a client of it otherwise).
type security struct {
	secret []byte
	keys   auth.KeyAuthenticator
	conn   interface{ Close() error }
}

func newSecurity(cfg serveConfig) (*security, error) {
	path, create := cfg.ServiceSecretFile, false
	if path == "" {
		path, create = filepath.Join(cfg.DataDir, "service.secret"), true
	}
	secret, err := auth.LoadSecret(path, create)
	if err != nil {
		return nil, err
	}
	return &security{secret: secret}, nil
}

// dialAccess makes the key authenticator a client of the access service.
func (s *security) dialAccess(addr string, tele map[string]*telemetry.Telemetry) error {
	var tp trace.TracerProvider
	for _, t := range tele {
		tp = t.TracerProvider
	}
	cc, err := grpcclient.Dial(addr, grpcclient.Options{TracerProvider: tp, Credentials: s.credentials("suite")})
	if err != nil {
		return err
	}
	s.conn = cc
	s.keys = access.Remote{Client: accessv1.NewAccessServiceClient(cc)}
	return nil
}

// verifier authenticates the calls to a component's server. Service tokens
// are checked against real time: they are about security, not about the
// business clock a test moves.
func (s *security) verifier(keys auth.KeyAuthenticator) *auth.Verifier {
	return &auth.Verifier{Keys: keys, Secret: s.secret, Clock: clock.Real{}}
}

// credentials sign a component's calls to the other services.
func (s *security) credentials(component string) *auth.ServiceCredentials {
	return &auth.ServiceCredentials{Secret: s.secret, Service: component, Clock: clock.Real{}}
}

func (s *security) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

// metricsRunnerName names the /metrics server among the runners.
const metricsRunnerName = "metrics"

// metricsRunner listens on addr and serves the process's metrics on
// /metrics. It is the first runner, so it stops last: the shutdown of
// every component can still be scraped.
func metricsRunner(addr string, h http.Handler, log *slog.Logger) (runner, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return runner{}, fmt.Errorf("metrics: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return runner{name: metricsRunnerName, url: "http://" + lis.Addr().String() + "/metrics",
		run: func(ctx context.Context) error {
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(lis) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		}}, nil
}
