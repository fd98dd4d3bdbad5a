package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthGRPC runs `rapport health --grpc` against a real grpc.health.v1
// server on loopback, serving and not serving.
func TestHealthGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	check := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := checkHealth(t.Context(), args, &out)
		return out.String(), err
	}

	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("rapport.profile.v1.ProfileService", healthpb.HealthCheckResponse_SERVING)
	if out, err := check("--grpc", addr); err != nil || !strings.Contains(out, "SERVING") {
		t.Fatalf("serving: err %v, out %q", err, out)
	}
	if _, err := check("--grpc", addr, "--service", "rapport.profile.v1.ProfileService"); err != nil {
		t.Fatalf("serving service: %v", err)
	}
	// Through the command switch too, as a container runs it.
	if err := run(t.Context(), []string{"health", "--grpc", addr}); err != nil {
		t.Fatalf("rapport health --grpc: %v", err)
	}

	// A service the server does not know is NotFound, not healthy.
	if _, err := check("--grpc", addr, "--service", "no.such.Service"); err == nil {
		t.Fatal("unknown service: want an error")
	}

	// Shutting down: the server still answers, but NOT_SERVING.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	out, err := check("--grpc", addr)
	if err == nil || !strings.Contains(err.Error(), "NOT_SERVING") || !strings.Contains(out, "NOT_SERVING") {
		t.Fatalf("not serving: err %v, out %q", err, out)
	}
	if err := run(t.Context(), []string{"health", "--grpc", addr}); err == nil {
		t.Fatal("rapport health --grpc on a NOT_SERVING server: want an error")
	}

	// Nothing listening: an error within the timeout, not a hang.
	srv.Stop()
	start := time.Now()
	if _, err := check("--grpc", addr, "--timeout", "2s"); err == nil {
		t.Fatal("stopped server: want an error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped server: the check took %v", d)
	}
}

// TestHealthHTTP runs `rapport health --http` against an httptest server that
// is ready, then not.
func TestHealthHTTP(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"profile":"NOT_SERVING"}`))
			return
		}
		w.Write([]byte(`{"profile":"SERVING"}`))
	}))
	t.Cleanup(ts.Close)

	var out bytes.Buffer
	if err := checkHealth(t.Context(), []string{"--http", ts.URL + "/readyz"}, &out); err != nil {
		t.Fatalf("ready: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "200 OK") {
		t.Fatalf("ready: out %q", out.String())
	}
	if err := run(t.Context(), []string{"health", "--http", ts.URL + "/readyz"}); err != nil {
		t.Fatalf("rapport health --http: %v", err)
	}

	ready.Store(false)
	out.Reset()
	err := checkHealth(t.Context(), []string{"--http", ts.URL + "/readyz"}, &out)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: err %v", err)
	}
	if !strings.Contains(out.String(), "NOT_SERVING") {
		t.Fatalf("not ready: the body is not shown: %q", out.String())
	}
	if err := run(t.Context(), []string{"health", "--http", ts.URL + "/readyz"}); err == nil {
		t.Fatal("rapport health --http on a 503: want an error")
	}
	if err := checkHealth(t.Context(), []string{"--http", ts.URL + "/nothing"}, &out); err == nil {
		t.Fatal("404: want an error")
	}
}

func TestHealthUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--grpc", "127.0.0.1:1", "--http", "http://127.0.0.1:1/"},
		{"--http", "127.0.0.1:8080/readyz"},
		{"--grpc", "127.0.0.1:1", "extra"},
		{"--grpc", "127.0.0.1:1", "--timeout", "0s"},
	} {
		if err := checkHealth(t.Context(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("rapport health %q: want an error", args)
		}
	}
}
