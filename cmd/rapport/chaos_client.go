package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"rapport.dev/platform/tenancy"
)

// chaosCall bounds one HTTP attempt.
const chaosCall = 10 * time.Second

// chaosClient is the load's REST client for one tenant. A call is sent
// again after a transport error, a 5xx, a 408 or a 429, with the same body
// (so with the same client ids), until it gets a final answer: a 2xx
// (acknowledged) or another 4xx (refused).
type chaosClient struct {
	base   string
	tenant string
	// key is the tenant's API key (the operator's while setting up).
	key string
	hc  *http.Client

	mu    sync.Mutex
	stats map[string]*chaosOpStats
}

// chaosOpStats counts one kind of operation.
type chaosOpStats struct {
	// Acked calls got a 2xx.
	Acked int
	// Refused calls got a final 4xx: the service said no (not enough
	// points, out of stock, not yet known) and changed nothing.
	Refused  int
	Refusals map[string]int
	// Retried is the failed attempts that were sent again: the processes
	// that were down or restarting.
	Retried int
	// GaveUp calls had no final answer when the run ended.
	GaveUp int
	// Latency of the acknowledged calls, retries included.
	latencies []time.Duration
}

func newChaosClient(base, tenant, key string, timeout time.Duration) *chaosClient {
	return &chaosClient{base: base, tenant: tenant, key: key, stats: map[string]*chaosOpStats{},
		hc: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}}
}

// chaosKey returns the API key the load authenticates with. It is the one
// place that knows how a tenant gets a key:
//
//   - a key given with --key is used as is;
//   - otherwise the operator key (<data-dir>/operator.key, written by the
//     access service on its first start) creates a tenant admin key for
//     tenant through POST /v1/keys.
func chaosKey(ctx context.Context, cfg chaosConfig, gateway, tenant string) (string, error) {
	if cfg.Key != "" {
		return cfg.Key, nil
	}
	operator, err := operatorKey(cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("chaos: operator key: %w", err)
	}
	op := newChaosClient(gateway, "", operator, chaosCall)
	var out struct {
		Key string `json:"key"`
	}
	code, body, err := op.call(ctx, "setup", http.MethodPost, "/v1/keys",
		map[string]any{"tenant": tenant, "scopes": []string{"admin"}, "name": "rapport chaos"}, &out)
	if err != nil {
		return "", fmt.Errorf("chaos: create a key for %s: %w", tenant, err)
	}
	if code != http.StatusOK || out.Key == "" {
		return "", fmt.Errorf("chaos: create a key for %s: %d %s", tenant, code, body)
	}
	return out.Key, nil
}

// attempt sends one request.
func (c *chaosClient) attempt(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if c.tenant != "" {
		req.Header.Set(tenancy.HeaderName, c.tenant) // must be the key's: a mix-up fails loudly
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, raw, nil
}

func retryable(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// call sends a request until it gets a final answer, decoding a 2xx body
// into out (when not nil). It returns the final status and body; an error
// only when ctx ended first (the call's outcome is then unknown).
func (c *chaosClient) call(ctx context.Context, kind, method, path string, in, out any) (int, []byte, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, nil, err
		}
	}
	began := time.Now()
	for attempt := 0; ; attempt++ {
		code, raw, err := c.attempt(ctx, method, path, body)
		if err == nil && !retryable(code) {
			if code/100 == 2 && out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					return code, raw, fmt.Errorf("%s %s: decode: %w", method, path, err)
				}
			}
			c.count(kind, code, raw, time.Since(began))
			return code, raw, nil
		}
		if ctx.Err() != nil {
			c.mu.Lock()
			c.op(kind).GaveUp++
			c.mu.Unlock()
			return 0, nil, fmt.Errorf("%s %s: no answer before the end: %w", method, path, ctx.Err())
		}
		c.mu.Lock()
		c.op(kind).Retried++
		c.mu.Unlock()
		backoff := min(50*time.Millisecond<<min(attempt, 5), time.Second)
		backoff = backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// read is call for a GET.
func (c *chaosClient) read(ctx context.Context, kind, path string, out any) (int, []byte, error) {
	return c.call(ctx, kind, http.MethodGet, path, nil, out)
}

func (c *chaosClient) op(kind string) *chaosOpStats {
	s := c.stats[kind]
	if s == nil {
		s = &chaosOpStats{Refusals: map[string]int{}}
		c.stats[kind] = s
	}
	return s
}

func (c *chaosClient) count(kind string, code int, raw []byte, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.op(kind)
	if code/100 == 2 {
		s.Acked++
		s.latencies = append(s.latencies, took)
		return
	}
	s.Refused++
	s.Refusals[refusalOf(code, raw)]++
}

// refusalOf names a refusal by its HTTP status and gRPC status name.
func refusalOf(code int, raw []byte) string {
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &e)
	return strconv.Itoa(code) + " " + e.Error.Status
}

// errorMessage is the message of a gateway error body.
func errorMessage(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return strings.TrimSpace(string(raw))
}

// snapshot copies the statistics, by kind.
func (c *chaosClient) snapshot() map[string]chaosOpStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]chaosOpStats{}
	for k, s := range c.stats {
		cp := *s
		cp.Refusals = map[string]int{}
		for r, n := range s.Refusals {
			cp.Refusals[r] = n
		}
		cp.latencies = append([]time.Duration(nil), s.latencies...)
		sort.Slice(cp.latencies, func(i, j int) bool { return cp.latencies[i] < cp.latencies[j] })
		out[k] = cp
	}
	return out
}

// jsonInt reads an int64 that protojson writes as a string.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*n = jsonInt(v)
	return err
}
