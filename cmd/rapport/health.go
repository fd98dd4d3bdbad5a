package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthCmd is `rapport health`: one health check of a running component,
// for container images that have no shell, curl or grpc_health_probe
// (docker-compose healthchecks, a Dockerfile HEALTHCHECK). It exits 0 only
// when the component answers healthy: a gRPC service SERVING on
// grpc.health.v1, or an HTTP endpoint with a 2xx status.
func healthCmd(ctx context.Context, args []string) error {
	return checkHealth(ctx, args, os.Stdout)
}

func checkHealth(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	grpcAddr := fs.String("grpc", "", "gRPC address (host:port) whose grpc.health.v1 Check must answer SERVING")
	service := fs.String("service", "", "with --grpc: the grpc.health.v1 service name to check; empty checks the server as a whole")
	httpURL := fs.String("http", "", "HTTP URL that must answer 2xx to a GET, e.g. http://127.0.0.1:8080/readyz")
	timeout := fs.Duration("timeout", 3*time.Second, "time the check may take")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rapport health --grpc HOST:PORT [--service NAME] | --http URL  [--timeout D]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected arguments %q", fs.Args())
	}
	if (*grpcAddr == "") == (*httpURL == "") {
		return errors.New("health: give exactly one of --grpc or --http")
	}
	if *timeout <= 0 {
		return errors.New("health: --timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *grpcAddr != "" {
		return checkGRPC(ctx, *grpcAddr, *service, out)
	}
	return checkHTTP(ctx, *httpURL, out)
}

func checkGRPC(ctx context.Context, addr, service string, out io.Writer) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("health: %s: %w", addr, err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("health: %s: %w", addr, err)
	}
	fmt.Fprintf(out, "%s %s\n", addr, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s: %s", addr, resp.GetStatus())
	}
	return nil
}

func checkHTTP(ctx context.Context, rawURL string, out io.Writer) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("health: --http %q: want an http:// or https:// URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	// The body (e.g. /readyz's per-backend report) helps whoever reads the
	// healthcheck log; a little of it is enough.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(out, "%s %s\n", u, resp.Status)
	if len(body) > 0 {
		fmt.Fprintf(out, "%s\n", body)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health: %s: %s", u, resp.Status)
	}
	return nil
}
