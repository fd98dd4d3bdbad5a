package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"rapport.dev/platform/webhook"
)

// chaosHook is the tenant's webhook endpoint for care's automatic
// messages, as a careful receiver writes one: it checks the signature and
// deduplicates on X-Rapport-Delivery, so a message delivered again (the
// sender died before it recorded the 2xx) is counted once. It answers the
// first attempt of one delivery in twenty with a 500, so that the outbox's
// retries run too.
type chaosHook struct {
	secret []byte
	srv    *http.Server
	url    string

	mu sync.Mutex
	// deliveries by delivery id.
	deliveries map[string]*chaosDelivery
	// bad are requests that failed verification.
	bad []string
	// failed counts the 500s answered on purpose.
	failed int
}

// chaosDelivery is one message as the receiver saw it.
type chaosDelivery struct {
	Plan, Customer, Occurrence string
	// Attempts is every request, Accepted those answered 200.
	Attempts, Accepted int
}

// chaosMessage is the part of a care message's body the receiver reads.
type chaosMessage struct {
	DeliveryID string `json:"delivery_id"`
	Tenant     string `json:"tenant"`
	PlanID     string `json:"plan_id"`
	CustomerID string `json:"customer_id"`
	Occurrence string `json:"occurrence"`
}

func startChaosHook(secret string) (*chaosHook, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: webhook receiver: %w", err)
	}
	h := &chaosHook{secret: []byte(secret), deliveries: map[string]*chaosDelivery{},
		url: "http://" + lis.Addr().String() + "/care"}
	h.srv = &http.Server{Handler: h}
	go h.srv.Serve(lis)
	return h, nil
}

func (h *chaosHook) close() { h.srv.Close() }

func (h *chaosHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(webhook.HeaderDelivery)
	var m chaosMessage
	jsonErr := json.Unmarshal(raw, &m)
	h.mu.Lock()
	defer h.mu.Unlock()
	bad := ""
	switch {
	case !webhook.Verify(h.secret, r.Header.Get(webhook.HeaderTimestamp), raw, r.Header.Get(webhook.HeaderSignature)):
		bad = "bad signature"
	case r.Header.Get(webhook.HeaderEvent) != "care.message":
		bad = fmt.Sprintf("event %q", r.Header.Get(webhook.HeaderEvent))
	case jsonErr != nil || id == "" || m.DeliveryID != id || m.Tenant != chaosTenant:
		bad = fmt.Sprintf("body %s (%v)", raw, jsonErr)
	}
	d := h.deliveries[id]
	if bad == "" && d != nil && (d.Plan != m.PlanID || d.Customer != m.CustomerID || d.Occurrence != m.Occurrence) {
		bad = fmt.Sprintf("for %s/%s/%s, earlier for %s/%s/%s", m.PlanID, m.CustomerID, m.Occurrence, d.Plan, d.Customer, d.Occurrence)
	}
	if bad != "" {
		h.bad = append(h.bad, id+": "+bad)
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}
	if d == nil {
		d = &chaosDelivery{Plan: m.PlanID, Customer: m.CustomerID, Occurrence: m.Occurrence}
		h.deliveries[id] = d
	}
	d.Attempts++
	if d.Attempts == 1 && len(h.deliveries)%20 == 0 {
		h.failed++
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	d.Accepted++
	w.WriteHeader(http.StatusOK)
}

// snapshot copies what the receiver saw.
func (h *chaosHook) snapshot() (map[string]chaosDelivery, []string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]chaosDelivery, len(h.deliveries))
	for id, d := range h.deliveries {
		out[id] = *d
	}
	return out, append([]string(nil), h.bad...), h.failed
}
