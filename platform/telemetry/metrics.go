package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// ComponentKey is the attribute every Rapport measurement carries to name
// the component it comes from ("profile", "gateway", …): one process may
// run several components on one meter provider, and a dashboard tells them
// apart by it.
const ComponentKey = attribute.Key("rapport.component")

// Buckets of the duration histograms, in seconds: from the sub-millisecond
// commit of a small transaction to the minute a scheduler may be late after
// a restart.
var (
	// LatencyBuckets suit work that takes microseconds to seconds.
	LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// LatenessBuckets suit how late something happens: milliseconds to hours.
	LatenessBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}
)

// Metrics is the meter provider of one process and the Prometheus handler
// that exposes what it measures. There is one per process, whatever the
// components it runs: each Prometheus exporter registers the same metric
// families and a target_info, so two in one registry would collide.
type Metrics struct {
	// MeterProvider creates the meters of every component in the process.
	MeterProvider metric.MeterProvider
	// Handler serves the Prometheus text format (for /metrics).
	Handler  http.Handler
	provider *sdkmetric.MeterProvider
}

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	// ServiceName becomes the resource's service.name (target_info), e.g.
	// "rapport" for a process running every component.
	ServiceName string
	// ServiceVersion becomes service.version.
	ServiceVersion string
	// Readers are more readers of the same measurements (tests read with
	// an sdk/metric ManualReader).
	Readers []sdkmetric.Reader
}

// NewMetrics creates the process's meter provider with a Prometheus
// exporter on a registry of its own (not the global one: tests start
// several in one process), plus the Go runtime and process collectors.
func NewMetrics(opts MetricsOptions) (*Metrics, error) {
	res, err := resourceOf(opts.ServiceName, opts.ServiceVersion)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return nil, fmt.Errorf("telemetry: prometheus collectors: %w", err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exp)}
	for _, r := range opts.Readers {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)
	return &Metrics{
		MeterProvider: mp,
		Handler:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
		provider:      mp,
	}, nil
}

// Shutdown stops the meter provider; a scrape after it sees no Rapport
// metrics.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil || m.provider == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}
