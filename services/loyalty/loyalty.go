// Package loyalty wires the loyalty service together. The chain: open
// loyalty.db → feed log → store → gRPC API and server; then three workers:
// the profile feed follower (purchases earn, refunds reverse, referrals
// give a bonus), the segmentation feed follower (segment campaigns), and
// the timer loop that expires lots and moves tiers at their instants.
package loyalty

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/component"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/platform/timers"
	"rapport.dev/services/loyalty/api"
	"rapport.dev/services/loyalty/store"
)

// Name is the component's name, used for its target and its bbolt file.
const Name = "loyalty"

// Config configures the loyalty service.
type Config struct {
	// DataDir holds loyalty.db.
	DataDir string
	// GRPCAddr is the listen address.
	GRPCAddr string
	// ProfileTarget is the profile service's gRPC address, whose feed is followed.
	ProfileTarget string
	// SegmentationTarget is the segmentation service's; empty means no
	// segment campaigns and no coupons issued to segments.
	SegmentationTarget string
	// ShutdownGrace bounds the graceful stop of in-flight RPCs.
	ShutdownGrace time.Duration
	// DialExtra is appended to the dial options (bufconn in tests).
	DialExtra []grpc.DialOption
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("loyalty: data dir is required"))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("loyalty: gRPC address is required"))
	}
	if c.ProfileTarget == "" {
		errs = append(errs, errors.New("loyalty: profile target is required"))
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return errors.Join(errs...)
}

// Deps are what the process hands every component.
type Deps = component.Deps

// Service is a loyalty service.
type Service struct {
	cfg       Config
	log       *slog.Logger
	clock     clock.Clock
	db        *boltdb.DB
	store     *store.Store
	server    *grpcserver.Server
	conns     []*grpc.ClientConn
	followers []*feed.Follower
}

// New opens the bbolt file, dials the services it follows and builds the server.
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
	if err != nil {
		db.Close()
		return nil, err
	}
	st := store.New(db, feedLog, deps.Clock, log)
	if err := st.Instrument(deps.MeterProvider); err != nil {
		db.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, clock: deps.Clock, db: db, store: st}
	dial := func(target string) (*grpc.ClientConn, error) {
		cc, err := deps.Dial(target, cfg.DialExtra...)
		if err == nil {
			s.conns = append(s.conns, cc)
		}
		return cc, err
	}
	pc, err := dial(cfg.ProfileTarget)
	if err != nil {
		s.Close()
		return nil, err
	}
	follow := func(name string, handle feed.Handler, source feed.Source) {
		s.followers = append(s.followers, deps.Follower(db, name, handle, source))
	}
	profiles := profilev1.NewProfileServiceClient(pc)
	follow("profile", st.ApplyProfileEvent, func(ctx context.Context, after uint64) (feed.Stream, error) {
		stream, err := profiles.FollowChanges(tenancy.WithTenant(ctx, tenancy.All), &profilev1.FollowChangesRequest{AfterSequence: after, Wait: true})
		return feed.StreamOf(stream), err
	})
	apiServer := api.New(st, feedLog, log)
	if cfg.SegmentationTarget != "" {
		sc, err := dial(cfg.SegmentationTarget)
		if err != nil {
			s.Close()
			return nil, err
		}
		segments := segmentationv1.NewSegmentationServiceClient(sc)
		follow("segmentation", st.ApplySegmentationEvent, func(ctx context.Context, after uint64) (feed.Stream, error) {
			stream, err := segments.FollowChanges(tenancy.WithTenant(ctx, tenancy.All), &segmentationv1.FollowChangesRequest{AfterSequence: after, Wait: true})
			return feed.StreamOf(stream), err
		})
		apiServer.SegmentMembers = api.SegmentMembersOf(segments)
	}
	s.server = deps.NewServer(api.CrossTenantMethods, db)
	loyaltyv1.RegisterLoyaltyServiceServer(s.server, apiServer)
	return s, nil
}

// Server exposes the gRPC server, so the process can register extra services.
func (s *Service) Server() *grpcserver.Server { return s.server }

// Serve serves on lis and runs the workers until ctx ends, then stops in
// order: health NOT_SERVING, workers, gRPC graceful stop, connections, bbolt.
func (s *Service) Serve(ctx context.Context, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.server.Serve(lis) }()
	s.log.Info("serving", "grpc", lis.Addr().String(), "db", s.db.Path())
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, f := range s.followers {
		wg.Go(func() { f.Run(wctx) })
	}
	wg.Go(func() {
		timers.Run(wctx, s.clock, s.log, s.store.TimerWake(), func(ctx context.Context, now time.Time) (time.Time, error) {
			_, next, err := s.store.FireDue(ctx, now)
			return next, err
		})
	})

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.server.NotServing()
	stopWorkers()
	wg.Wait()
	s.server.StopTimeout(s.cfg.ShutdownGrace)
	return errors.Join(serveErr, s.Close())
}

// Close releases what New opened.
func (s *Service) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(append(errs, s.db.Close())...)
}

// Run listens on the configured address and serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		s.Close()
		return fmt.Errorf("loyalty: listen: %w", err)
	}
	return s.Serve(ctx, lis)
}
