// Package profile wires the profile service together: config, the bbolt
// store, the domain, the gRPC API and its server. It reads top to bottom as
// the constructor chain: open the file → feed log → store → domain → API →
// gRPC server.
package profile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/component"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/services/profile/api"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// Name is the component's name, used for its target and its bbolt file.
const Name = "profile"

// Config configures the profile service.
type Config struct {
	// DataDir holds profile.db.
	DataDir string
	// GRPCAddr is the listen address, e.g. "127.0.0.1:7101".
	GRPCAddr string
	// ShutdownGrace bounds the graceful stop of in-flight RPCs.
	ShutdownGrace time.Duration
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("profile: data dir is required"))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("profile: gRPC address is required"))
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return errors.Join(errs...)
}

// Deps are what the process hands every component.
type Deps = component.Deps

// Service is a running profile service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	clock  clock.Clock
	db     *boltdb.DB
	store  *store.Store
	server *grpcserver.Server
}

// scrubChunk is how many feed entries one scrub transaction looks at: the
// single writer is held for that long, other writes queue behind it.
const scrubChunk = 10_000

// scrubRetry is how long the scrubber waits after a failed transaction.
const scrubRetry = time.Minute

// New opens the service's bbolt file and builds its gRPC server.
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
	repo := store.New(db, feedLog)
	svc := domain.NewService(repo, deps.Clock)
	srv := deps.NewServer(api.CrossTenantMethods, db)
	profilev1.RegisterProfileServiceServer(srv, api.New(svc, feedLog, log))
	return &Service{cfg: cfg, log: log, clock: deps.Clock, db: db, store: repo, server: srv}, nil
}

// Serve serves on lis until ctx ends, then stops in order: health
// NOT_SERVING, gRPC graceful stop under the grace period, the feed scrubber
// stopped and waited for, bbolt closed.
func (s *Service) Serve(ctx context.Context, lis net.Listener) error {
	scrubCtx, stopScrub := context.WithCancel(ctx)
	defer stopScrub()
	scrubbed := make(chan struct{})
	go func() {
		defer close(scrubbed)
		s.scrubFeed(scrubCtx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.server.Serve(lis) }()
	s.log.Info("serving", "grpc", lis.Addr().String(), "db", s.db.Path())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.server.StopTimeout(s.cfg.ShutdownGrace)
	stopScrub()
	<-scrubbed
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("profile: close db: %w", err)
	}
	return serveErr
}

// scrubFeed removes erased customers' personal data from the change feed
// in chunks, whenever an erasure left some: at start (an erase before a
// crash) and after each erase. It returns when ctx ends.
func (s *Service) scrubFeed(ctx context.Context) {
	for {
		retry := time.Time{}
		for ctx.Err() == nil {
			more, err := s.store.ScrubFeed(ctx, scrubChunk)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("feed scrub failed; retrying", "err", err, "retry_in", scrubRetry)
					retry = s.clock.Now().Add(scrubRetry)
				}
				break
			}
			if !more {
				break
			}
		}
		if !clock.WaitUntil(ctx, s.clock, retry, s.store.ScrubSignal()) {
			return
		}
	}
}

// Server exposes the gRPC server, so the process can register extra
// services (the test clock) before serving.
func (s *Service) Server() *grpcserver.Server { return s.server }

// Close releases the bbolt file of a service that was built but never served.
func (s *Service) Close() error { return s.db.Close() }

// Run listens on the configured address and serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		s.db.Close()
		return fmt.Errorf("profile: listen: %w", err)
	}
	return s.Serve(ctx, lis)
}
