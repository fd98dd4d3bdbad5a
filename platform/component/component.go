// Package component holds what the rapport process hands every service it
// starts, so each service's wiring takes the same dependencies the same way.
package component

import (
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"rapport.dev/platform/auth"
	"rapport.dev/platform/clock"
)

// Deps are what the process hands every component: no globals, so tests
// pass their own logger, tracer provider and (fake) clock.
type Deps struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Clock          clock.Clock
	// Auth, when set, authenticates every call to the component's server
	// (API keys and service tokens); without it the server trusts the
	// tenant metadata, as tests of one service do.
	Auth *auth.Verifier
	// Credentials go with the component's calls to the other services
	// (a service token).
	Credentials credentials.PerRPCCredentials
}

// For fills the defaults (slog.Default, the real clock) and labels the
// logger with the component's name.
func (d Deps) For(name string) Deps {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	d.Logger = d.Logger.With("component", name)
	return d
}
