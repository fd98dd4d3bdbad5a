// Package care wires the care service together. The chain: open care.db →
// feed log → webhook outbox → store → gRPC API and server; then the
// workers: the profile, segmentation and loyalty feed followers (who each
// customer is, purchases, complaints, tiers, segments), the timer loop
// that fires plans and moves tasks at their instants, and the outbox's
// delivery loop for automatic messages.
package care

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
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
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/api"
	"rapport.dev/services/care/store"
)

// Name is the component's name, used for its target and its bbolt file.
const Name = "care"

// Config configures the care service.
type Config struct {
	// DataDir holds care.db.
	DataDir string
	// GRPCAddr is the listen address.
	GRPCAddr string
	// ProfileTarget is the profile service's gRPC address: its feed is
	// followed and completed tasks write their contact logs there.
	ProfileTarget string
	// SegmentationTarget is the segmentation service's; empty means no
	// value tiers, segments or activity states (plans targeting them never fire).
	SegmentationTarget string
	// LoyaltyTarget is the loyalty service's; empty means no loyalty tiers.
	LoyaltyTarget string
	// WebhookSecret signs automatic messages (X-Rapport-Signature); empty
	// means the messages of message plans are dropped with a warning (one
	// secret for every tenant until issue 7's per-tenant secrets).
	WebhookSecret string
	// ShutdownGrace bounds the graceful stop of in-flight RPCs.
	ShutdownGrace time.Duration
	// DialExtra is appended to the dial options (bufconn in tests).
	DialExtra []grpc.DialOption
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("care: data dir is required"))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("care: gRPC address is required"))
	}
	if c.ProfileTarget == "" {
		errs = append(errs, errors.New("care: profile target is required"))
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return errors.Join(errs...)
}

// Deps are what the process hands every component.
type Deps = component.Deps

// Service is a care service.
type Service struct {
	cfg       Config
	log       *slog.Logger
	clock     clock.Clock
	db        *boltdb.DB
	store     *store.Store
	outbox    *webhook.Outbox
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
	outbox := webhook.New(db, webhook.Options{Clock: deps.Clock, Logger: log})
	msgs := store.Messages{Outbox: outbox}
	if cfg.WebhookSecret != "" {
		secret := []byte(cfg.WebhookSecret)
		msgs.Secret = func(string) []byte { return secret }
	} else {
		log.Warn("no webhook secret configured: message plans will not fire")
	}
	st := store.New(db, feedLog, deps.Clock, log, msgs)
	if err := st.Instrument(deps.MeterProvider); err != nil {
		db.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, clock: deps.Clock, db: db, store: st, outbox: outbox}
	dial := func(target string) (*grpc.ClientConn, error) {
		cc, err := deps.Dial(target, cfg.DialExtra...)
		if err == nil {
			s.conns = append(s.conns, cc)
		}
		return cc, err
	}
	follow := func(name string, handle feed.Handler, source feed.Source) {
		s.followers = append(s.followers, deps.Follower(db, name, handle, source))
	}

	pc, err := dial(cfg.ProfileTarget)
	if err != nil {
		s.Close()
		return nil, err
	}
	profiles := profilev1.NewProfileServiceClient(pc)
	follow("profile", st.ApplyProfileEvent, func(ctx context.Context, after uint64) (feed.Stream, error) {
		stream, err := profiles.FollowChanges(tenancy.WithTenant(ctx, tenancy.All), &profilev1.FollowChangesRequest{AfterSequence: after, Wait: true})
		return feed.StreamOf(stream), err
	})
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
	}
	if cfg.LoyaltyTarget != "" {
		lc, err := dial(cfg.LoyaltyTarget)
		if err != nil {
			s.Close()
			return nil, err
		}
		loyalty := loyaltyv1.NewLoyaltyServiceClient(lc)
		follow("loyalty", st.ApplyLoyaltyEvent, func(ctx context.Context, after uint64) (feed.Stream, error) {
			stream, err := loyalty.FollowChanges(tenancy.WithTenant(ctx, tenancy.All), &loyaltyv1.FollowChangesRequest{AfterSequence: after, Wait: true})
			return feed.StreamOf(stream), err
		})
	}
	apiServer := api.New(st, feedLog, outbox, log)
	apiServer.Profile = profiles
	s.server = deps.NewServer(api.CrossTenantMethods, db)
	carev1.RegisterCareServiceServer(s.server, apiServer)
	return s, nil
}

// Server exposes the gRPC server, so the process can register extra services.
func (s *Service) Server() *grpcserver.Server { return s.server }

// Serve serves on lis and runs the workers until ctx ends, then stops in
// order: health NOT_SERVING, workers (followers, timers, webhook
// deliveries), gRPC graceful stop, connections, bbolt.
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
	outboxErr := make(chan error, 1)
	wg.Go(func() {
		err := s.outbox.Run(wctx)
		if err != nil && wctx.Err() == nil {
			s.log.Error("webhook deliveries stopped", "error", err)
			outboxErr <- fmt.Errorf("care: webhook outbox: %w", err)
		}
	})

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	case serveErr = <-outboxErr:
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
		return fmt.Errorf("care: listen: %w", err)
	}
	return s.Serve(ctx, lis)
}
