// Package gen holds the code generated from proto/ by `make generate`.
// Nothing here is written by hand except this file and openapi/openapi.go;
// CI fails when a fresh generation differs from what is committed.
package gen
