package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openapi.json is generated from openapi.yaml so that the binary needs no
// YAML parser; TestOpenAPIJSONUpToDate fails when it is stale.
//go:generate go test -run ^TestOpenAPIJSONUpToDate$ . -args -update

// openapiYAML is the OpenAPI 3.1 description of this package's routes,
// served at GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is openapiYAML as JSON, served at GET /v1/openapi.json.
//
//go:embed openapi.json
var openapiJSON []byte

// serveDocument answers with one of the embedded descriptions. They are
// public (no token): they describe the API, not the data.
func serveDocument(contentType string, doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(doc)
	}
}
