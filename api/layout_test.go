package api_test

import (
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
