// Package segmentation wires the segmentation service together. The chain:
// open segmentation.db → feed log → store → gRPC API and server; then four
// workers: the profile feed follower, the timer loop that fires date-relative
// rule flips, the rescoring loop for population-relative scores, and the
// value model loop that runs queued and scheduled fits.
package segmentation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/component"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/platform/timers"
	"rapport.dev/services/segmentation/api"
	"rapport.dev/services/segmentation/store"

	"google.golang.org/grpc"
)

// Name is the component's name, used for its target and its bbolt file.
const Name = "segmentation"

// followerName names the profile feed cursor in feed_cursors.
const followerName = "profile"

// Config configures the segmentation service.
type Config struct {
	// DataDir holds segmentation.db.
	DataDir string
	// GRPCAddr is the listen address.
	GRPCAddr string
	// ProfileTarget is the profile service's gRPC address, whose feed is followed.
	ProfileTarget string
	// RescoreInterval is how often population scores are recomputed for
	// tenants that changed; 0 means 2 s.
	RescoreInterval time.Duration
	// PopulationSweep is how often the tenants' populations in memory that
	// no full re-evaluation used since the last sweep are dropped
	// (store.EvictIdlePopulations); 0 means 15 min.
	PopulationSweep time.Duration
	// ShutdownGrace bounds the graceful stop of in-flight RPCs.
	ShutdownGrace time.Duration
	// DialExtra is appended to the profile dial options (bufconn in tests).
	DialExtra []grpc.DialOption
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("segmentation: data dir is required"))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("segmentation: gRPC address is required"))
	}
	if c.ProfileTarget == "" {
		errs = append(errs, errors.New("segmentation: profile target is required"))
	}
	if c.RescoreInterval == 0 {
		c.RescoreInterval = 2 * time.Second
	}
	if c.PopulationSweep == 0 {
		c.PopulationSweep = 15 * time.Minute
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return errors.Join(errs...)
}

// Deps are what the process hands every component.
type Deps = component.Deps

// Service is a segmentation service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock
	db       *boltdb.DB
	store    *store.Store
	server   *grpcserver.Server
	profile  *grpc.ClientConn
	follower *feed.Follower
	applied  *progress
}

// New opens the bbolt file, dials the profile service and builds the server.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps = deps.For(Name)
	log := deps.Logger
	opts := store.Options()
	db, err := deps.OpenDB(cfg.DataDir, opts)
	if err != nil {
		return nil, err
	}
	feedLog, err := deps.FeedLog(db)
	var st *store.Store
	if err == nil {
		st, err = store.New(db, feedLog, deps.Clock, log)
	}
	if err == nil {
		err = st.Instrument(deps.MeterProvider)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	conn, err := deps.Dial(cfg.ProfileTarget, cfg.DialExtra...)
	if err != nil {
		db.Close()
		return nil, err
	}
	profiles := profilev1.NewProfileServiceClient(conn)
	cursor, err := feed.Cursor(db, followerName)
	if err != nil {
		conn.Close()
		db.Close()
		return nil, err
	}
	applied := newProgress(cursor)
	follower := deps.Follower(db, followerName, st.ApplyProfileEvent, func(ctx context.Context, after uint64) (feed.Stream, error) {
		ctx = tenancy.WithTenant(ctx, tenancy.All)
		stream, err := profiles.FollowChanges(ctx, &profilev1.FollowChangesRequest{AfterSequence: after, Wait: true})
		if err != nil {
			return nil, err
		}
		return feed.StreamOf(stream), nil
	})
	follower.Applied = applied.set
	srv := deps.NewServer(api.CrossTenantMethods, db)
	a := api.New(st, feedLog, log)
	a.CaughtUp = func(ctx context.Context) error { return caughtUp(ctx, profiles, applied) }
	segmentationv1.RegisterSegmentationServiceServer(srv, a)
	return &Service{cfg: cfg, log: log, clock: deps.Clock, db: db, store: st, server: srv, profile: conn, follower: follower, applied: applied}, nil
}

// progress is the profile follower's cursor, with a signal when it moves.
type progress struct {
	mu      sync.Mutex
	cursor  uint64
	changed chan struct{}
}

func newProgress(cursor uint64) *progress {
	return &progress{cursor: cursor, changed: make(chan struct{})}
}

func (p *progress) set(cursor uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cursor = cursor
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitFor returns once the cursor reaches seq, or ctx's error.
func (p *progress) waitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.Lock()
		cursor, changed := p.cursor, p.changed
		p.mu.Unlock()
		if cursor >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// catchUpTimeout bounds how long a call waits for the follower.
const catchUpTimeout = time.Minute

// caughtUp returns once the follower has applied every profile event that
// existed when it was called: it reads the profile feed from the follower's
// cursor to its end (usually nothing) and waits for the cursor to get
// there. It fails with UNAVAILABLE when that takes longer than a minute.
func caughtUp(ctx context.Context, profiles profilev1.ProfileServiceClient, applied *progress) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	applied.mu.Lock()
	head := applied.cursor
	applied.mu.Unlock()
	stream, err := profiles.FollowChanges(tenancy.WithTenant(ctx, tenancy.All),
		&profilev1.FollowChangesRequest{AfterSequence: head, Wait: false})
	if err != nil {
		return fmt.Errorf("reading the profile feed's end: %w: %w", err, fault.ErrUnavailable)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the profile feed's end: %w: %w", err, fault.ErrUnavailable)
		}
		head = max(head, m.GetEvent().GetSequence())
	}
	if err := applied.waitFor(ctx, head); err != nil {
		return fmt.Errorf("segmentation has not caught up with the profile feed (sequence %d): %w: %w", head, err, fault.ErrUnavailable)
	}
	return nil
}

// Server exposes the gRPC server, so the process can register extra services.
func (s *Service) Server() *grpcserver.Server { return s.server }

// Serve serves on lis and runs the workers until ctx ends, then stops in
// order: health NOT_SERVING, workers, gRPC graceful stop, the profile
// connection, bbolt.
func (s *Service) Serve(ctx context.Context, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.server.Serve(lis) }()
	s.log.Info("serving", "grpc", lis.Addr().String(), "db", s.db.Path())

	if err := s.store.MarkAllDirty(); err != nil {
		s.log.Error("listing tenants to rescore failed", "error", err)
	}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range []func(context.Context){
		func(ctx context.Context) { s.follower.Run(ctx) },
		func(ctx context.Context) {
			timers.Run(ctx, s.clock, s.log, s.store.TimerWake(), func(ctx context.Context, now time.Time) (time.Time, error) {
				_, next, err := s.store.FireDue(ctx, now)
				return next, err
			})
		},
		func(ctx context.Context) {
			// Segments whose members a crash left uncomputed.
			if err := s.store.ResumePending(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "finishing pending segments failed", "error", err)
			}
		},
		s.rescore,
		s.sweepPopulations,
		s.fitValueModels,
	} {
		wg.Add(1)
		go func() { defer wg.Done(); w(wctx) }()
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.server.NotServing()
	stopWorkers()
	wg.Wait()
	s.server.StopTimeout(s.cfg.ShutdownGrace)
	return errors.Join(serveErr, s.profile.Close(), s.db.Close())
}

// Close releases what New opened, for a service never served.
func (s *Service) Close() error { return errors.Join(s.profile.Close(), s.db.Close()) }

// rescore recomputes population scores of tenants that changed, on a real
// ticker: it is about freshness, not about the time the rules see.
func (s *Service) rescore(ctx context.Context) {
	every(ctx, s.cfg.RescoreInterval, func() {
		for _, tenant := range s.store.Dirty() {
			if _, err := s.store.Rescore(ctx, tenant); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "rescoring failed", "tenant", tenant, "error", err)
			}
		}
	})
}

// sweepPopulations drops the populations in memory that no full
// re-evaluation used for a sweep, on a real ticker: it is about memory.
func (s *Service) sweepPopulations(ctx context.Context) {
	every(ctx, s.cfg.PopulationSweep, func() {
		if n := s.store.EvictIdlePopulations(); n > 0 {
			s.log.InfoContext(ctx, "dropped idle populations", "tenants", n)
		}
	})
}

// every runs f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// fitValueModels runs queued value model fits, oldest first, and queues
// the scheduled ones when they fall due on the injected clock. A fit cut
// short by shutdown stays queued and runs again after a restart.
func (s *Service) fitValueModels(ctx context.Context) {
	for {
		for {
			tenant, id, ok, err := s.store.NextQueuedFit()
			if err != nil || !ok {
				if err != nil && ctx.Err() == nil {
					s.log.ErrorContext(ctx, "reading the fit queue failed", "error", err)
				}
				break
			}
			f, err := s.store.RunFit(ctx, tenant, id)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.log.ErrorContext(ctx, "value model fit failed to run", "tenant", tenant, "fit", id, "error", err)
				break
			}
			s.log.InfoContext(ctx, "value model fitted", "tenant", tenant, "fit", id, "state", f.State, "error", f.Error, "took", f.FitTime)
		}
		now := s.clock.Now().UTC()
		next, err := s.store.ScheduleFits(ctx, now)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "scheduling value model fits failed", "error", err)
		}
		// Activity moves with time alone: rescore tenants with a model at
		// least hourly even when nothing else happens.
		if _, err := s.store.MarkStale(now, time.Hour); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "finding stale scores failed", "error", err)
		}
		// New tenants are picked up within a minute.
		if horizon := now.Add(time.Minute); next.IsZero() || next.After(horizon) {
			next = horizon
		}
		if !clock.WaitUntil(ctx, s.clock, next, s.store.FitWake()) {
			return
		}
	}
}

// Run listens on the configured address and serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		s.Close()
		return fmt.Errorf("segmentation: listen: %w", err)
	}
	return s.Serve(ctx, lis)
}
