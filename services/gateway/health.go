package gateway

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"rapport.dev/gen/openapi"
)

// readyTimeout bounds the health checks of one /readyz request, so a
// hanging backend makes the gateway not ready rather than the probe time
// out.
const readyTimeout = 2 * time.Second

// Readiness is the JSON body of /readyz.
type Readiness struct {
	// Status is "ready" when every backend is SERVING, else "not ready".
	Status string `json:"status"`
	// Backends maps each backend to its grpc.health.v1 serving status
	// ("SERVING", "NOT_SERVING", …), or to the gRPC code of a failed check
	// ("UNAVAILABLE", "DEADLINE_EXCEEDED", …).
	Backends map[string]string `json:"backends"`
	// Connections maps each backend to the state of the gateway's client
	// connection ("READY", "CONNECTING", "TRANSIENT_FAILURE", …).
	Connections map[string]string `json:"connections"`
}

// healthz reports that the process serves HTTP; it checks nothing else, so
// a restart never follows from a backend outage.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz asks every backend's grpc.health.v1 service, in parallel, whether
// it serves: 200 when all do, 503 otherwise.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	states := make([]string, len(g.backends))
	var wg sync.WaitGroup
	for i, b := range g.backends {
		wg.Go(func() { states[i] = b.check(ctx) })
	}
	wg.Wait()

	body := Readiness{Status: "ready", Backends: map[string]string{}, Connections: map[string]string{}}
	httpStatus := http.StatusOK
	for i, b := range g.backends {
		body.Backends[b.name] = states[i]
		body.Connections[b.name] = b.conn.GetState().String()
		if states[i] != grpc_health_v1.HealthCheckResponse_SERVING.String() {
			body.Status, httpStatus = "not ready", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, httpStatus, body)
}

// check returns the backend's serving status, or the code of the failed
// check.
func (b *backend) check(ctx context.Context) string {
	resp, err := grpc_health_v1.NewHealthClient(b.conn).Check(ctx,
		&grpc_health_v1.HealthCheckRequest{Service: b.health})
	if err != nil {
		return code.Code(status.Code(err)).String()
	}
	return resp.GetStatus().String()
}

// openAPI serves the OpenAPI document of the routes this gateway serves.
func (g *Gateway) openAPI(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(g.document)
}

// customer360Document is the OpenAPI of the route the gateway serves
// itself (customer360.go), merged into the generated document; its schemas
// refer to the generated ones.
//
//go:embed customer360.swagger.json
var customer360Document []byte

// servedDocument is the generated OpenAPI document cut to the services
// served (by their tags, which grpc-gateway names after the gRPC service):
// the document covers every service in proto/, and a route the gateway does
// not serve must not be advertised. The gateway's own routes are added.
func servedDocument(services map[string]bool) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		return nil, fmt.Errorf("gateway: the embedded OpenAPI document: %w", err)
	}
	if err := mergeDocument(doc, customer360Document); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for p, ops := range paths {
		ops, _ := ops.(map[string]any)
		for method, op := range ops {
			tags, _ := op.(map[string]any)["tags"].([]any)
			if len(tags) > 0 && !services[fmt.Sprint(tags[0])] {
				delete(ops, method)
			}
		}
		if len(ops) == 0 {
			delete(paths, p)
		}
	}
	if tags, ok := doc["tags"].([]any); ok {
		kept := tags[:0]
		for _, t := range tags {
			if name, _ := t.(map[string]any)["name"].(string); services[name] {
				kept = append(kept, t)
			}
		}
		doc["tags"] = kept
	}
	return json.Marshal(doc)
}

// mergeDocument adds the paths, definitions and tags of a hand-written
// OpenAPI fragment to doc. A name both define is an error: the fragment
// must not shadow what is generated.
func mergeDocument(doc map[string]any, fragment []byte) error {
	var frag map[string]any
	if err := json.Unmarshal(fragment, &frag); err != nil {
		return fmt.Errorf("gateway: the gateway's OpenAPI fragment: %w", err)
	}
	for _, section := range []string{"paths", "definitions"} {
		into, _ := doc[section].(map[string]any)
		if into == nil {
			into = map[string]any{}
			doc[section] = into
		}
		from, _ := frag[section].(map[string]any)
		for name, v := range from {
			if _, ok := into[name]; ok {
				return fmt.Errorf("gateway: the gateway's OpenAPI fragment redefines %s %q", section, name)
			}
			into[name] = v
		}
	}
	tags, _ := doc["tags"].([]any)
	more, _ := frag["tags"].([]any)
	doc["tags"] = append(tags, more...)
	return nil
}
