// Package component holds what the rapport process hands every service it
// starts, so each service's wiring takes the same dependencies the same way.
package component

import (
	"log/slog"
	"path/filepath"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"rapport.dev/platform/auth"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
)

// Deps are what the process hands every component: no globals, so tests
// pass their own logger, tracer and meter providers and (fake) clock.
type Deps struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// MeterProvider is the process's: components sharing a process share
	// it and label what they measure with their name
	// (telemetry.ComponentKey).
	MeterProvider metric.MeterProvider
	Clock         clock.Clock
	// Auth, when set, authenticates every call to the component's server
	// (API keys and service tokens); without it the server trusts the
	// tenant metadata, as tests of one service do.
	Auth *auth.Verifier
	// Credentials go with the component's calls to the other services
	// (a service token).
	Credentials credentials.PerRPCCredentials

	// name is the component's, set by For.
	name string
}

// For fills the defaults (slog.Default, no metrics, the real clock) and
// labels the logger with the component's name.
func (d Deps) For(name string) Deps {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.MeterProvider == nil {
		d.MeterProvider = metricnoop.NewMeterProvider()
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	d.Logger = d.Logger.With("component", name)
	d.name = name
	return d
}

// OpenDB opens the component's own bbolt file, <dataDir>/<name>.db, with
// its logger and telemetry.
func (d Deps) OpenDB(dataDir string, opts boltdb.Options) (*boltdb.DB, error) {
	opts.Logger, opts.TracerProvider, opts.MeterProvider, opts.Component = d.Logger, d.TracerProvider, d.MeterProvider, d.name
	return boltdb.Open(filepath.Join(dataDir, d.name+".db"), opts)
}

// FeedLog returns the component's change feed, stored in db, measured
// (rapport.feed.head).
func (d Deps) FeedLog(db *boltdb.DB) (*feed.Log, error) {
	l := feed.NewLog(db, d.Clock)
	return l, l.Instrument(d.MeterProvider, d.name)
}

// Follower follows a feed into db under name, logged, traced and measured
// as the component's, on its clock.
func (d Deps) Follower(db *boltdb.DB, name string, handle feed.Handler, source feed.Source) *feed.Follower {
	return &feed.Follower{Name: name, DB: db, Handle: handle, Source: source, Logger: d.Logger,
		TracerProvider: d.TracerProvider, MeterProvider: d.MeterProvider, Component: d.name, Clock: d.Clock}
}

// Dial connects the component to another service, traced, measured and
// with the component's credentials.
func (d Deps) Dial(target string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpcclient.Dial(target, grpcclient.Options{TracerProvider: d.TracerProvider, MeterProvider: d.MeterProvider,
		Component: d.name, Extra: extra, Credentials: d.Credentials})
}

// NewServer builds the component's gRPC server: authenticated by d.Auth,
// serving the audit log of db, with crossTenant the methods services may
// call for every tenant.
func (d Deps) NewServer(crossTenant []string, db *boltdb.DB) *grpcserver.Server {
	return grpcserver.New(grpcserver.Options{Logger: d.Logger, TracerProvider: d.TracerProvider, MeterProvider: d.MeterProvider,
		Component: d.name, CrossTenant: crossTenant, Auth: d.Auth, Audit: db})
}
