// Package gateway serves Rapport's REST/JSON API: grpc-gateway translates
// each HTTP request into a call to the backend gRPC service that owns the
// route, as declared by the google.api.http options in proto/.
//
// Before a request reaches a backend the gateway
//
//   - answers CORS preflights and marks responses for allowed origins;
//   - refuses bodies over Options.MaxBodyBytes with 413;
//   - requires a well-formed X-Rapport-Tenant header, forwarded as the
//     x-rapport-tenant metadata; the wildcard tenant is refused;
//   - decodes the body strictly: malformed JSON, unknown fields and
//     unknown enum values are a 400.
//
// Every error is JSON (ErrorBody) carrying the gRPC code, its name, the
// message and the field violations of a google.rpc.BadRequest detail, with
// the HTTP status grpc-gateway maps the code to.
//
// One route is the gateway's own: GET /v1/customers/{customer_id}/360, the
// Customer 360 view (customer360.go), which calls every backend in parallel
// under one deadline and marks the parts it could not get instead of
// failing.
//
// Outside the API, and without a tenant: /healthz (the process serves),
// /readyz (every backend's grpc.health.v1 status) and /openapi.json.
//
// otelhttp traces every request, continuing the caller's W3C trace context,
// and the backend calls join the same trace.
//
// A backend whose server runs in the same process (Options.ProfileInProcess)
// is called in-process for unary RPCs, through that server's interceptors
// and stats handler, with the same answers as over the network; streams
// still use the network connection.
package gateway
