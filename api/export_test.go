package api

import "net/http"

// WrapHandler puts wrap in front of the root handler, the one Open serves
// and Handler returns. Test-only: the api tests' conformance check
// (openapi_test.go's newOpenServer) wraps the servers that need Open's
// real listener this way.
func (s *Server) WrapHandler(wrap func(http.Handler) http.Handler) { s.root = wrap(s.root) }
