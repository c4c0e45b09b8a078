package api_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyAPIServesHTTP keeps every route in api: no other package of the
// module (tests included) imports gorilla/mux, and the domain packages do not
// import api.
func TestOnlyAPIServesHTTP(t *testing.T) {
	domain := map[string]bool{"projections": true, "replay": true, "audit": true, "backfill": true}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != ".." && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, err := filepath.Rel("..", path)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		f, err := parser.ParseFile(gotoken.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/gorilla/mux") && dir != "api" {
				t.Errorf("%s imports %s: routes live in api", rel, p)
			}
			if p == "github.com/fcaudit/fcaudit/api" && domain[strings.SplitN(dir, "/", 2)[0]] {
				t.Errorf("%s imports api: domain packages expose plain methods, api serves them", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

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
