// Package telemetry sets up OpenTelemetry for Rapport.
//
// Traces, per component: a tracer provider whose resource carries
// service.name, the W3C propagator, and an OTLP/gRPC exporter when the
// standard OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// variable is set. Without it, spans are still created (trace ids appear in
// logs and on the change feed) but nothing is exported. Sampling follows
// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, parent-based always-on by
// default.
//
// Metrics, per process: one meter provider whose Prometheus exporter is
// served on /metrics (NewMetrics); every measurement names its component
// with ComponentKey.
//
// Logs: slog with the trace id, span id and tenant of the context (NewLogger).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the W3C trace-context and baggage propagator every component uses.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Telemetry is the set-up of one component.
type Telemetry struct {
	// TracerProvider creates the component's tracers.
	TracerProvider trace.TracerProvider
	shutdown       func(context.Context) error
}

// Options configures Setup.
type Options struct {
	// ServiceName becomes the resource's service.name, e.g. "rapport-profile".
	ServiceName string
	// ServiceVersion becomes service.version.
	ServiceVersion string
	// Exporter overrides the exporter chosen from the environment (tests).
	Exporter sdktrace.SpanExporter
}

// Setup creates the tracer provider of one component.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	res, err := resourceOf(opts.ServiceName, opts.ServiceVersion)
	if err != nil {
		return nil, err
	}
	exp := opts.Exporter
	if exp == nil && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exp, err = otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	} else if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		// Nothing is exported: record no spans (they cost 15-20µs of CPU
		// per write, BENCHMARKS.md), but keep making trace ids, which the
		// logs and the change feed carry. A caller's sampled context is
		// still followed.
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	return &Telemetry{TracerProvider: tp, shutdown: tp.Shutdown}, nil
}

// Shutdown flushes pending spans and stops the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// resourceOf describes the process to telemetry backends.
func resourceOf(name, version string) (*resource.Resource, error) {
	if name == "" {
		return nil, errors.New("telemetry: service name is required")
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(name),
		semconv.ServiceVersion(version),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}
