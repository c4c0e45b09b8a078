package api_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"path/filepath"
	"testing"
)

// TestAPITestsUseNewServer keeps the conformance check on every api test:
// outside openapi_test.go, no test of this package builds a server or
// serves a request another way than newServer or newOpenServer (httptest
// servers and recorders, api.NewServer, Handler, ServeHTTP, WrapHandler).
// Without api.NewServer no test holds an *api.Server, so none can Open one
// unchecked. The route walk of openapi_routes_test.go (package api) builds
// a router but sends no request.
func TestAPITestsUseNewServer(t *testing.T) {
	forbidden := map[string]bool{"httptest.NewServer": true, "httptest.NewUnstartedServer": true,
		"httptest.NewTLSServer": true, "httptest.NewRecorder": true, "api.NewServer": true}
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("test files: %v %v", files, err)
	}
	for _, name := range files {
		if name == "openapi_test.go" {
			continue
		}
		f, err := parser.ParseFile(gotoken.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			what := sel.Sel.Name
			if x, ok := sel.X.(*ast.Ident); ok {
				what = x.Name + "." + what
			}
			if forbidden[what] || sel.Sel.Name == "Handler" || sel.Sel.Name == "ServeHTTP" || sel.Sel.Name == "WrapHandler" {
				t.Errorf("%s: %s bypasses the OpenAPI conformance check: use newServer", name, what)
			}
			return true
		})
	}
}
