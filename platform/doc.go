// Package platform is the root of the small, purpose-named packages every
// Rapport service is built from: grpcserver and grpcclient (transport with
// tracing, health, recovery and tenancy), telemetry (OpenTelemetry set-up),
// boltdb (opening bbolt files, schema versions, group commit), feed (the
// durable change feed and its followers), timers (durable per-owner timers),
// webhook (a durable outbox of signed outgoing webhooks), heapfloor (a floor
// under the GC's heap goal), money, config, shutdown, tenancy, fault and
// clock. There is deliberately no "utils" package.
package platform
