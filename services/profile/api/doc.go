// Package api is the profile service's gRPC transport: each handler checks
// the request's shape, calls the domain and maps the error with
// grpcserver.Status. Generated types stop here; convert maps them to the
// domain's.
package api
