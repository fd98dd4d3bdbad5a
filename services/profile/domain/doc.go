// Package domain is the profile service's model: customers (person or
// organization) with their basic data, acquisition, lifecycle and B2B
// contacts; the timeline of dynamic records; the satisfaction indicators
// derived from it; and the rules that decide what may be stored (validation,
// refunds that may not exceed their purchase, merge and erasure).
//
// It knows nothing of gRPC or bbolt: the store package implements Repository
// and calls the rules here inside its transactions.
package domain
