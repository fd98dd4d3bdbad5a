package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/tenancy"
)

// keeper keeps what it exported after Shutdown (the in-memory exporter of
// tracetest forgets on Shutdown) and remembers being shut down.
type keeper struct {
	mu       sync.Mutex
	spans    []sdktrace.ReadOnlySpan
	shutdown bool
}

func (k *keeper) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans = append(k.spans, spans...)
	return nil
}

func (k *keeper) Shutdown(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.shutdown = true
	return nil
}

func TestSetupExportsWithServiceName(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	exp := &keeper{}
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "rapport-profile", ServiceVersion: "1.2.3", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	span.End()
	// Shutdown flushes the batcher: the span is exported by the time it returns.
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	defer exp.mu.Unlock()
	if !exp.shutdown {
		t.Error("the exporter was not shut down")
	}
	if len(exp.spans) != 1 || exp.spans[0].Name() != "work" {
		t.Fatalf("exported %d spans, want the one span", len(exp.spans))
	}
	attrs := map[string]string{}
	for _, kv := range exp.spans[0].Resource().Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["service.name"] != "rapport-profile" || attrs["service.version"] != "1.2.3" {
		t.Errorf("resource = %v", attrs)
	}
}

func TestSetupNeedsServiceName(t *testing.T) {
	if _, err := telemetry.Setup(context.Background(), telemetry.Options{}); err == nil {
		t.Error("Setup without a service name succeeded")
	}
	var none *telemetry.Telemetry
	if err := none.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of nil: %v", err)
	}
}

func TestPropagatorCarriesTraceContext(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "test", Exporter: tracetest.NewInMemoryExporter()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	defer span.End()

	carrier := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, carrier)
	got := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), carrier))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Errorf("extracted %v from %v, want the span's context", got, carrier)
	}
}

func TestLoggerAddsTraceAndTenant(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "test", Exporter: tracetest.NewInMemoryExporter()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, slog.LevelInfo, true).With("component", "test")
	ctx, span := tel.TracerProvider.Tracer("test").Start(tenancy.WithTenant(context.Background(), "acme"), "work")
	log.InfoContext(ctx, "hello")
	span.End()
	log.DebugContext(ctx, "below the level")
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	for k, want := range map[string]string{"msg": "hello", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "tenant": "acme", "component": "test"} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %q", k, rec[k], want)
		}
	}
	rec = nil
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"trace_id", "span_id", "tenant"} {
		if _, ok := rec[k]; ok {
			t.Errorf("record without a context has %s", k)
		}
	}
}

// TestSamplingFollowsEnvironment checks the sampler comes from the
// standard OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG variables,
// parent-based always-on when they are unset, and that a parent-based
// sampler keeps whatever the caller decided: a request's spans in every
// service are sampled alike.
func TestSamplingFollowsEnvironment(t *testing.T) {
	parent := func(sampled bool) context.Context {
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: flags, Remote: true})
		return trace.ContextWithRemoteSpanContext(context.Background(), sc)
	}
	for _, c := range []struct {
		name, sampler, arg                 string
		root, underSampled, underUnsampled bool
	}{
		{"default", "", "", true, true, false},
		{"parent-based ratio 0", "parentbased_traceidratio", "0", false, true, false},
		{"parent-based ratio 1", "parentbased_traceidratio", "1", true, true, false},
		{"always off", "always_off", "", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.arg)
			tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "test", Exporter: tracetest.NewInMemoryExporter()})
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			tracer := tel.TracerProvider.Tracer("test")
			for _, s := range []struct {
				what string
				ctx  context.Context
				want bool
			}{
				{"a root span", context.Background(), c.root},
				{"a child of a sampled caller", parent(true), c.underSampled},
				{"a child of an unsampled caller", parent(false), c.underUnsampled},
			} {
				_, span := tracer.Start(s.ctx, "work")
				if got := span.SpanContext().IsSampled(); got != s.want {
					t.Errorf("%s: sampled = %v, want %v", s.what, got, s.want)
				}
				span.End()
			}
		})
	}
}

// TestNoExporterRecordsNoSpans: with nothing to export to, root spans are
// not recorded, yet they still carry trace ids for the logs and the feed; a
// sampled caller is still followed, and an explicit sampler still rules.
func TestNoExporterRecordsNoSpans(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	for _, c := range []struct {
		sampler string
		root    bool
	}{{"", false}, {"always_on", true}} {
		t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
		tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "test"})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
		if span.IsRecording() != c.root || !span.SpanContext().HasTraceID() {
			t.Errorf("sampler %q: recording %v, trace id %v; want recording %v and a trace id", c.sampler,
				span.IsRecording(), span.SpanContext().TraceID(), c.root)
		}
		span.End()
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
		_, child := tel.TracerProvider.Tracer("test").Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "work")
		if !child.IsRecording() {
			t.Errorf("sampler %q: the child of a sampled caller is not recorded", c.sampler)
		}
		child.End()
		tel.Shutdown(context.Background())
	}
}
