package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// receivedSpan is one span as the OTLP receiver got it.
type receivedSpan struct {
	service, name         string
	traceID, id, parentID string
}

func (s receivedSpan) String() string {
	return fmt.Sprintf("%s %q span %s parent %q", s.service, s.name, s.id, s.parentID)
}

// otlpReceiver is a real OTLP/gRPC trace receiver, as a collector runs it:
// the suite exports to it through the standard OTEL_* variables.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
	// got is closed and replaced whenever spans arrive.
	got chan struct{}
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service: service, name: s.GetName(),
					traceID: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
					parentID: hex.EncodeToString(s.GetParentSpanId())})
			}
		}
	}
	close(r.got)
	r.got = make(chan struct{})
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// snapshot returns the spans received so far and a channel closed when
// more arrive.
func (r *otlpReceiver) snapshot() ([]receivedSpan, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans), r.got
}

// startReceiver serves an OTLP trace receiver on a loopback port and
// returns it with its endpoint URL.
func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{got: make(chan struct{})}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(lis)
	// Registered before the suite's cleanup, so it runs after it: the
	// suite flushes its last spans into a receiver still serving.
	t.Cleanup(srv.Stop)
	return r, "http://" + lis.Addr().String()
}

// purchaseScenario makes one purchase do work in every service: a loyalty
// programme (the purchase earns points), a care plan triggered by
// purchases (a satisfaction survey), a dynamic segment of buyers, and the
// customer. It returns the purchase, to be recorded with
// POST /v1/customers/c-1/events.
func purchaseScenario(api rest, at time.Time) map[string]any {
	api.must("POST", "/v1/loyalty/programs", map[string]any{"programId": "club", "displayName": "Tea Club", "pointsName": "积分",
		"currency": "CNY", "pointsPerUnit": 1, "firstPurchaseBonus": 50, "returnWindowDays": 7,
		"pointValue": map[string]any{"amountMinor": "1", "currency": "CNY"},
		"tiers":      []any{map[string]any{"tierId": "member"}, map[string]any{"tierId": "gold", "threshold": "1000", "multiplier": 2}}}, 200)
	api.must("POST", "/v1/care/plans", map[string]any{"planId": "survey", "displayName": "回访满意度", "enabled": true,
		"target": map[string]any{"allCustomers": true}, "survey": map[string]any{"daysAfterPurchase": 3},
		"task": map[string]any{"title": "Ask {name} how the tea was"}, "at": map[string]any{"hour": 10}}, 200)
	api.must("POST", "/v1/segments", map[string]any{"segmentId": "buyers", "displayName": "Buyers",
		"kind": "SEGMENT_KIND_DYNAMIC", "rule": `features.purchases > 0`}, 200)
	api.must("POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"timeZone": "Asia/Shanghai", "owner": "li"}, 200)
	return map[string]any{"eventId": "pos-1", "occurTime": at.Format(time.RFC3339),
		"purchase": map[string]any{"orderId": "SO-1", "amount": map[string]any{"amountMinor": "25900", "currency": "CNY"}}}
}

// purchaseRoute is the name of the gateway's span for recording an event.
const purchaseRoute = "HTTP POST /v1/customers/{event.customer_id}/events"

// TestSuiteTraceOfAPurchase is the trace an SRE follows: the suite exports
// over OTLP to a receiver in the test, and one purchase recorded through
// the gateway yields one trace with the gateway's request, the profile
// RPC and its bbolt commit, and — through the trace context the change
// feed carries — the work it set off in segmentation, loyalty and care,
// every span's parent in the trace. Once with every component in one
// process, once with a process per component, as in production.
func TestSuiteTraceOfAPurchase(t *testing.T) {
	addrs := []string{"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0",
		"--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	t.Run("one process", func(t *testing.T) {
		testTraceOfAPurchase(t, func(t *testing.T) (string, *proc, *proc) {
			p := start(t, append([]string{"--target=all", "--data-dir", t.TempDir()}, addrs...)...)
			return p.urls["gateway"], p, p
		})
	})
	t.Run("a process per component", func(t *testing.T) {
		testTraceOfAPurchase(t, func(t *testing.T) (string, *proc, *proc) {
			dir := t.TempDir()
			// The profile process runs the access service too (start adds it).
			prof := start(t, "--target=profile", "--data-dir", dir, "--profile-addr", "127.0.0.1:0")
			access := prof.grpcAddr("access")
			seg := start(t, "--target=segmentation", "--data-dir", dir, "--profile-addr", prof.grpcAddr("profile"),
				"--segmentation-addr", "127.0.0.1:0", "--access-addr", access)
			loy := start(t, "--target=loyalty", "--data-dir", dir, "--profile-addr", prof.grpcAddr("profile"),
				"--segmentation-addr", seg.grpcAddr("segmentation"), "--loyalty-addr", "127.0.0.1:0", "--access-addr", access)
			care := start(t, "--target=care", "--data-dir", dir, "--profile-addr", prof.grpcAddr("profile"),
				"--segmentation-addr", seg.grpcAddr("segmentation"), "--loyalty-addr", loy.grpcAddr("loyalty"), "--care-addr", "127.0.0.1:0",
				"--access-addr", access)
			gw := start(t, "--target=gateway", "--data-dir", dir, "--profile-addr", prof.grpcAddr("profile"),
				"--segmentation-addr", seg.grpcAddr("segmentation"), "--loyalty-addr", loy.grpcAddr("loyalty"),
				"--care-addr", care.grpcAddr("care"), "--http-addr", "127.0.0.1:0", "--access-addr", access)
			return gw.urls["gateway"], prof, gw
		})
	})
}

// testTraceOfAPurchase starts the suite with startSuite, which returns the
// gateway's URL, the process of the access service (for an API key) and a
// process whose logs explain a failure.
func testTraceOfAPurchase(t *testing.T, startSuite func(t *testing.T) (string, *proc, *proc)) {
	recv, endpoint := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // milliseconds
	t.Setenv("OTEL_TRACES_SAMPLER", "")        // the default, parent-based always-on
	gateway, keys, p := startSuite(t)
	api := rest{t: t, base: gateway, tenant: "acme", key: keys.key("acme")}

	ev := purchaseScenario(api, time.Now().UTC())
	api.must("POST", "/v1/customers/c-1/events", ev, 200)

	// What the trace must hold, by service: span names. Care applies the
	// loyalty feed's points.changed too: the points the purchase earned,
	// one hop further down the feeds.
	want := map[string][]string{
		"rapport-gateway":      {purchaseRoute},
		"rapport-profile":      {"rapport.profile.v1.ProfileService/RecordEvent", "bbolt.commit"},
		"rapport-segmentation": {"feed.apply event.recorded"},
		"rapport-loyalty":      {"feed.apply event.recorded"},
		"rapport-care":         {"feed.apply event.recorded", "feed.apply points.changed"},
	}
	deadline := time.After(30 * time.Second)
	for {
		spans, more := recv.snapshot()
		trace, problems := purchaseTrace(spans, want)
		if len(problems) == 0 {
			t.Logf("one trace, %d connected spans:\n  %s", len(trace), strings.Join(spanLines(trace), "\n  "))
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no connected trace of the purchase after 30 s:\n  %s\nreceived %d spans; the purchase's trace:\n  %s\nlogs:\n%s",
				strings.Join(problems, "\n  "), len(spans), strings.Join(spanLines(trace), "\n  "), p.logs)
		}
	}
}

// purchaseTrace finds the trace of the one purchase among spans and says
// what it lacks: a span of want, or a parent (every span's parent must be
// in the trace, except the gateway's root span's).
func purchaseTrace(spans []receivedSpan, want map[string][]string) ([]receivedSpan, []string) {
	var roots []receivedSpan
	for _, s := range spans {
		if s.service == "rapport-gateway" && s.name == purchaseRoute {
			roots = append(roots, s)
		}
	}
	if len(roots) != 1 {
		var gateway []string
		for _, s := range spans {
			if s.service == "rapport-gateway" {
				gateway = append(gateway, s.name)
			}
		}
		return nil, []string{fmt.Sprintf("%d gateway spans %q, want the one purchase's (gateway spans: %q)", len(roots), purchaseRoute, gateway)}
	}
	root := roots[0]
	var problems []string
	if root.parentID != "" {
		problems = append(problems, fmt.Sprintf("the gateway span has a parent %s: it is not the trace's root", root.parentID))
	}
	var trace []receivedSpan
	ids := map[string]bool{}
	for _, s := range spans {
		if s.traceID == root.traceID {
			trace = append(trace, s)
			ids[s.id] = true
		}
	}
	for service, names := range want {
		for _, name := range names {
			found := slices.ContainsFunc(trace, func(s receivedSpan) bool { return s.service == service && s.name == name })
			if !found {
				problems = append(problems, fmt.Sprintf("no %s span %q in trace %s", service, name, root.traceID))
			}
		}
	}
	for _, s := range trace {
		if s.id != root.id && !ids[s.parentID] {
			problems = append(problems, fmt.Sprintf("%s: its parent is not in the trace", s))
		}
	}
	return trace, problems
}

// spanLines lists spans as a tree from their roots, for failure messages.
func spanLines(spans []receivedSpan) []string {
	children := map[string][]receivedSpan{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.id] = true
	}
	var tops []receivedSpan
	for _, s := range spans {
		if ids[s.parentID] {
			children[s.parentID] = append(children[s.parentID], s)
		} else {
			tops = append(tops, s)
		}
	}
	var lines []string
	var walk func(s receivedSpan, depth int)
	walk = func(s receivedSpan, depth int) {
		lines = append(lines, strings.Repeat("  ", depth)+s.service+": "+s.name)
		kids := children[s.id]
		sort.Slice(kids, func(i, j int) bool { return kids[i].service+kids[i].name < kids[j].service+kids[j].name })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, s := range tops {
		walk(s, 0)
	}
	return lines
}
