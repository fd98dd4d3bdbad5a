// Package api is the care service's gRPC API: request validation,
// conversion between rapport.care.v1 messages and the domain, and the
// store. CompleteTask also writes the contact log (and survey answer) to
// the customer's profile timeline.
package api
