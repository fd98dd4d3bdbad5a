// Package component holds what the rapport process hands every service it
// starts, so each service's wiring takes the same dependencies the same way.
package component

import (
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"rapport.dev/platform/auth"
	"rapport.dev/platform/clock"
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
	return d
}
