package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
)

// binary is the real rapport binary, built once by TestMain.
var binary string

// secretFile is the service secret of every process the tests start.
var secretFile string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rapport-suite")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rapport")
	// Every process a test starts shares one service secret, as the
	// processes of one deployment do.
	secretFile = filepath.Join(dir, "service.secret")
	if _, err := auth.LoadSecret(secretFile, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rapport:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running rapport process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	urls map[string]string // component → URL as printed
	logs *bytes.Buffer
	done chan struct{}
	// dataDir is the process's --data-dir; keys caches its API keys by tenant.
	dataDir string
	keys    map[string]string
}

var urlLine = regexp.MustCompile(`^\s+(\w+)\s+(\w+://\S+)`)

// start runs `rapport serve` with args and waits until it prints its URLs.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	args, dataDir := suiteArgs(args)
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	// /metrics on a free port unless the test names one with the flag:
	// tests run several processes at once.
	cmd.Env = append(os.Environ(), "RAPPORT_METRICS_ADDR=127.0.0.1:0")
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, urls: map[string]string{}, logs: logs, done: make(chan struct{}), dataDir: dataDir, keys: map[string]string{}}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				p.urls[m[1]] = m[2]
			}
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") && !signalled {
				signalled = true
				close(ready)
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("rapport exited before it was ready:\n%s", logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("rapport did not become ready:\n%s", logs)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// suiteArgs completes the arguments of a test's process as a deployment
// would: the shared service secret, and the access service beside every
// service the process runs (on a free port), so its API keys can be checked.
// It returns the arguments and the data folder.
func suiteArgs(args []string) ([]string, string) {
	args = slices.Clone(args)
	has := func(flag string) int {
		for i, a := range args {
			if a == flag || strings.HasPrefix(a, flag+"=") {
				return i
			}
		}
		return -1
	}
	if has("--service-secret-file") < 0 {
		args = append(args, "--service-secret-file", secretFile)
	}
	// A process told where the access service is uses that one.
	if has("--access-addr") >= 0 {
		return args, dataDirOf(args, has)
	}
	args = append(args, "--access-addr", "127.0.0.1:0")
	if i := has("--target"); i >= 0 {
		target, ok := strings.CutPrefix(args[i], "--target=")
		if !ok {
			target, i = args[i+1], i+1
		}
		if t := strings.Split(target, ","); target != "all" && target != "gateway" && !slices.Contains(t, "access") {
			args[i] = strings.TrimSuffix(args[i], target) + "access," + target
		}
	}
	return args, dataDirOf(args, has)
}

func dataDirOf(args []string, has func(string) int) string {
	i := has("--data-dir")
	if i < 0 {
		return "./data"
	}
	if d, ok := strings.CutPrefix(args[i], "--data-dir="); ok {
		return d
	}
	return args[i+1]
}

// key returns an admin API key of tenant on p, created with the operator key
// the first time.
func (p *proc) key(tenant string) string {
	p.t.Helper()
	if k, ok := p.keys[tenant]; ok {
		return k
	}
	k, err := tenantAdminKey(context.Background(), p.grpcAddr("access"), p.dataDir, tenant, 1e6)
	if err != nil {
		p.t.Fatalf("API key of tenant %s: %v", tenant, err)
	}
	p.keys[tenant] = k
	return k
}

// ctx is a context whose gRPC calls act for tenant with its admin key.
func (p *proc) ctx(tenant string) context.Context {
	return auth.WithKey(tenancy.WithTenant(context.Background(), tenant), p.key(tenant))
}

// rest is a REST client of p's gateway acting for tenant with its admin key.
func (p *proc) rest(tenant string) rest {
	return rest{t: p.t, base: p.urls["gateway"], tenant: tenant, key: p.key(tenant)}
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("rapport did not stop on SIGTERM:\n%s", p.logs)
	}
}

// kill sends SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) grpcAddr(component string) string {
	return strings.TrimPrefix(p.urls[component], "grpc://")
}

// rest is a small JSON client for the gateway.
type rest struct {
	t      *testing.T
	base   string
	tenant string
	key    string
}

func (r rest) do(method, path string, body any) (int, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.tenant != "" {
		req.Header.Set(tenancy.HeaderName, r.tenant)
	}
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			// FollowChanges streams one JSON object per line.
			out["_raw"] = string(raw)
		}
	} else {
		out["_raw"] = string(raw)
	}
	return resp.StatusCode, out
}

func (r rest) must(method, path string, body any, want int) map[string]any {
	r.t.Helper()
	code, out := r.do(method, path, body)
	if code != want {
		r.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

func dial(t *testing.T, addr string) profilev1.ProfileServiceClient {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return profilev1.NewProfileServiceClient(cc)
}

func purchase(id, customer, order string, minor int64, at time.Time) *profilev1.Event {
	return &profilev1.Event{EventId: id, CustomerId: customer, OccurTime: timestamppb.New(at),
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order,
			Amount: &typev1.Money{AmountMinor: minor, Currency: "CNY"}}}}
}

// TestSuiteAll starts `rapport serve --target=all` as a user would and drives
// it through REST and gRPC.
func TestSuiteAll(t *testing.T) {
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	api := p.rest("acme")

	// Readiness reflects the profile backend.
	if code, body := (rest{t: t, base: api.base}).do("GET", "/readyz", nil); code != 200 {
		t.Fatalf("readyz %d: %v", code, body)
	}

	// Create a customer over REST; a retry returns it without creating.
	customer := map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"region": map[string]any{"country": "CN", "province": "浙江", "city": "杭州"}, "timeZone": "Asia/Shanghai"}
	if out := api.must("POST", "/v1/customers", customer, 200); out["created"] != true {
		t.Fatalf("create: %v", out)
	}
	if out := api.must("POST", "/v1/customers", customer, 200); out["created"] == true {
		t.Fatalf("retried create created again: %v", out)
	}

	// Two purchases over REST, then a partial refund.
	for i, amount := range []string{"12900", "5000"} {
		ev := map[string]any{"eventId": fmt.Sprintf("e-%d", i+1), "occurTime": fmt.Sprintf("2026-10-0%dT10:00:00Z", i+1),
			"purchase": map[string]any{"orderId": fmt.Sprintf("o-%d", i+1), "amount": map[string]any{"amountMinor": amount, "currency": "CNY"}}}
		api.must("POST", "/v1/customers/c-1/events", ev, 200)
	}
	refund := map[string]any{"eventId": "e-3", "occurTime": "2026-10-05T10:00:00Z",
		"refund": map[string]any{"orderId": "o-1", "amount": map[string]any{"amountMinor": "2900", "currency": "CNY"}}}
	api.must("POST", "/v1/customers/c-1/events", refund, 200)
	// More than what is left of the order is refused, naming the field.
	over := map[string]any{"eventId": "e-4", "occurTime": "2026-10-06T10:00:00Z",
		"refund": map[string]any{"orderId": "o-1", "amount": map[string]any{"amountMinor": "10001", "currency": "CNY"}}}
	out := api.must("POST", "/v1/customers/c-1/events", over, 400)
	if !strings.Contains(fmt.Sprint(out), "event.refund.amount.amount_minor") {
		t.Fatalf("over-refund error does not name the field: %v", out)
	}

	// The timeline, over REST and gRPC.
	tl := api.must("GET", "/v1/customers/c-1/events", nil, 200)
	if evs, _ := tl["events"].([]any); len(evs) != 3 {
		t.Fatalf("timeline has %d events, want 3: %v", len(evs), tl)
	}
	client := dial(t, p.grpcAddr("profile"))
	ctx := p.ctx("acme")
	ev, err := client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e-5", "c-1", "o-5", 800, time.Date(2026, 10, 7, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Created {
		t.Fatal("gRPC RecordEvent: created = false")
	}
	list, err := client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Events) != 4 || list.Events[3].EventId != "e-5" {
		t.Fatalf("gRPC timeline: %v", list.Events)
	}

	// Indicators are net of the refund.
	ind := api.must("GET", "/v1/customers/c-1/indicators", nil, 200)
	totals := ind["indicators"].(map[string]any)["totals"].([]any)[0].(map[string]any)
	if totals["netMinor"] != "15800" {
		t.Fatalf("net = %v, want 15800 (12900+5000+800-2900)", totals["netMinor"])
	}

	// Follow the feed over gRPC: every change in commit order, without gaps.
	stream, err := client.FollowChanges(ctx, &profilev1.FollowChangesRequest{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i := 0; i < 5; i++ {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Event.Sequence != uint64(i+1) {
			t.Fatalf("feed event %d has sequence %d", i, m.Event.Sequence)
		}
		types = append(types, m.Event.Type)
	}
	want := []string{"customer.created", "event.recorded", "event.recorded", "event.recorded", "event.recorded"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("feed types %v, want %v", types, want)
	}
	// A write made now arrives on the open stream.
	if _, err := client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e-6", "c-1", "o-6", 100, time.Date(2026, 10, 8, 0, 0, 0, 0, time.UTC))}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.Event.Sequence != 6 || m.Event.Key != "c-1" {
		t.Fatalf("live feed event: %v, %v", m, err)
	}

	// The same feed over REST, for the tenant only.
	raw := api.must("GET", "/v1/changes?wait=false", nil, 200)["_raw"]
	if n := strings.Count(fmt.Sprint(raw), `"sequence"`); n != 6 {
		t.Fatalf("REST feed has %d events, want 6:\n%v", n, raw)
	}
	// Another tenant sees nothing of acme's.
	other := p.rest("globex")
	other.must("GET", "/v1/customers/c-1", nil, 404)
	if raw := other.must("GET", "/v1/changes?wait=false", nil, 200)["_raw"]; strings.Contains(fmt.Sprint(raw), "sequence") {
		t.Fatalf("globex sees acme's feed: %v", raw)
	}
}

// TestSuiteSplitTargets runs the profile service and the gateway as two
// processes, as in production, and checks they find each other over gRPC.
func TestSuiteSplitTargets(t *testing.T) {
	svc := start(t, "--target=profile", "--data-dir", t.TempDir(), "--profile-addr", "127.0.0.1:0")
	if _, ok := svc.urls["gateway"]; ok {
		t.Fatal("--target=profile started a gateway")
	}
	gw := start(t, "--target=gateway", "--data-dir", t.TempDir(), "--profile-addr", svc.grpcAddr("profile"), "--segmentation-addr", "", "--loyalty-addr", "", "--care-addr", "", "--http-addr", "127.0.0.1:0")
	api := rest{t: t, base: gw.urls["gateway"], tenant: "acme", key: svc.key("acme")}
	api.must("POST", "/v1/customers", map[string]any{"customerId": "c-9", "kind": "CUSTOMER_KIND_ORGANIZATION", "displayName": "ACME Ltd"}, 200)
	c := api.must("GET", "/v1/customers/c-9", nil, 200)["customer"].(map[string]any)
	if c["displayName"] != "ACME Ltd" {
		t.Fatalf("customer via split gateway: %v", c)
	}
	// With the profile process gone, readiness says so instead of lying.
	svc.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := (rest{t: t, base: api.base}).do("GET", "/readyz", nil)
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d after the profile service stopped", code)
		}
		time.Sleep(50 * time.Millisecond) // polling an external process; no signal to wait on
	}
}
