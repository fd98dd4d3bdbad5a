// Package openapi embeds the OpenAPI v2 document generated from proto/, so the
// gateway serves exactly the contract it was built from.
package openapi

import _ "embed"

// Document is the merged OpenAPI v2 (Swagger) document of every service.
//
//go:embed rapport.swagger.json
var Document []byte
