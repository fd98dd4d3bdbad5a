// Package api is the segmentation service's gRPC transport: each handler
// checks the request's shape, calls the store and maps the error with
// grpcserver.Status.
package api
