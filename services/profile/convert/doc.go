// Package convert maps between the generated protobuf types of
// rapport.profile.v1 and the profile domain types, in both directions.
//
// It is the one place where gen/ types meet domain types: the gRPC API layer
// uses it to turn requests into domain values and domain results into
// responses, and the store uses it to encode change-feed payloads, so a
// follower reads the same Customer and Event messages the API returns.
// Keeping the mapping here lets the domain stay free of protobuf and keeps
// every field's mapping in one reviewed spot; the tests fail when a proto
// field is added without a mapping.
//
// The mapping is plain: enums are cast (the domain's numbers are the API's),
// timestamps become UTC time.Time with nil as the zero time, empty messages,
// slices and maps become nil, and slices, maps and pointers are copied so the
// two sides never share memory (but for CustomerToProtoShared, whose caller
// hands the customer over). Functions named FromProto read only what a
// client may set; output-only fields are ignored there and filled in by
// ToProto.
package convert
