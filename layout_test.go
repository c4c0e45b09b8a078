// Tests of the tree's layout: which package may import what, and where the
// FC vocabulary is spelled. They read source files only, so they sit at the
// module root beside the documentation tests.
package fcaudit_test

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

const module = "github.com/fcaudit/fcaudit/"

// goFile is one parsed Go file of the module: its path, its package
// directory (slash-separated, relative to the root) and whether it is a test.
type goFile struct {
	path, dir string
	test      bool
	file      *ast.File
}

// walkGo parses every Go file of the module (testdata and hidden folders
// aside) and calls fn with it.
func walkGo(t *testing.T, mode parser.Mode, fn func(goFile)) {
	t.Helper()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(gotoken.NewFileSet(), p, nil, mode)
		if err != nil {
			return err
		}
		fn(goFile{path: p, dir: filepath.ToSlash(filepath.Dir(p)), test: strings.HasSuffix(p, "_test.go"), file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func imports(f *ast.File) []string {
	var out []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		out = append(out, p)
	}
	return out
}

// TestOnlyAPIServesHTTP keeps every route in api: no other package of the
// module (tests included) imports gorilla/mux, and the domain packages do
// not import api.
func TestOnlyAPIServesHTTP(t *testing.T) {
	domain := map[string]bool{"projections": true, "replay": true, "audit": true, "backfill": true, "console": true}
	walkGo(t, parser.ImportsOnly, func(g goFile) {
		for _, p := range imports(g.file) {
			if strings.HasPrefix(p, "github.com/gorilla/mux") && g.dir != "api" {
				t.Errorf("%s imports %s: routes live in api", g.path, p)
			}
			if p == module+"api" && domain[strings.SplitN(g.dir, "/", 2)[0]] && !g.test {
				t.Errorf("%s imports api: domain packages expose plain methods, api serves them", g.path)
			}
		}
	})
}

// TestStoreLayout keeps the store's place: store imports only the standard
// library, and outside tests only cmd (which wires them) and bench (the
// reference tools) import a backend, besides the backend's own sub-packages.
func TestStoreLayout(t *testing.T) {
	backends := map[string]bool{module + "store/sqlite": true, module + "store/esdb": true}
	walkGo(t, parser.ImportsOnly, func(g goFile) {
		if g.test {
			return
		}
		for _, p := range imports(g.file) {
			if g.dir == "store" && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
				t.Errorf("%s imports %s: store is standard library only", g.path, p)
			}
			if backends[p] && !strings.HasPrefix(g.dir, "cmd/") && !strings.HasPrefix(g.dir, "bench/") &&
				!strings.HasPrefix(module+g.dir, p) {
				t.Errorf("%s imports the backend %s: only cmd wires backends", g.path, p)
			}
		}
	})
}

// TestTypesDefinedOnlyInFC keeps one FC vocabulary: outside fc, no non-test
// Go file spells an account event type in a string literal (raw-string help
// texts, which name types as examples for people, aside).
func TestTypesDefinedOnlyInFC(t *testing.T) {
	walkGo(t, 0, func(g goFile) {
		if g.test || g.dir == "fc" {
			return
		}
		ast.Inspect(g.file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if ok && lit.Kind == gotoken.STRING && strings.HasPrefix(lit.Value, `"`) &&
				strings.Contains(lit.Value, "financial_connections.account.") {
				t.Errorf("%s: %s: FC event types are defined in fc (fc.Types, fc.Type*)", g.path, lit.Value)
			}
			return true
		})
	})
}
