package api

import (
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/fieldmask"
)

// immutable are the Customer fields an update may not name: identity,
// server-set fields, and contacts (changed with UpsertContact/DeleteContact so
// two account managers editing different contacts do not overwrite each other).
var immutable = []string{"customer_id", "kind", "create_time", "update_time", "etag", "erased", "merged_into",
	"organization.contacts", "organization.uncovered_roles"}

// updatePaths returns the mask's paths after checking each names a field of
// Customer that may be changed. An empty mask means every field populated in
// the request (AIP-134).
func updatePaths(c *profilev1.Customer, mask []string) ([]string, error) {
	return fieldmask.Paths(c, mask, immutable)
}
