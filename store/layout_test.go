package store_test

import (
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayout keeps the store's place in the tree: store itself imports only
// the standard library, and the backends (store/sqlite, store/esdb) are
// imported outside tests only by cmd (which wires them), bench (reference
// tools) and each other's own sub-packages' tests — never by a domain
// package.
func TestLayout(t *testing.T) {
	const module = "github.com/fcaudit/fcaudit/"
	backends := map[string]bool{module + "store/sqlite": true, module + "store/esdb": true}
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
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
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
			if dir == "store" && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
				t.Errorf("%s imports %s: store is standard library only", rel, p)
			}
			if backends[p] && !strings.HasPrefix(dir, "cmd/") && !strings.HasPrefix(dir, "bench/") &&
				!strings.HasPrefix(module+dir, p) {
				t.Errorf("%s imports the backend %s: only cmd wires backends", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
