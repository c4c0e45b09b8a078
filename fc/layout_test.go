package fc_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestTypesDefinedOnlyHere keeps one FC vocabulary: outside fc, no non-test
// Go file spells an account event type as a string literal (help texts in
// raw strings aside, which name types as examples for people).
func TestTypesDefinedOnlyHere(t *testing.T) {
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != ".." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "fc") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(gotoken.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if ok && lit.Kind == gotoken.STRING && strings.HasPrefix(lit.Value, `"`) &&
				strings.Contains(lit.Value, "financial_connections.account.") {
				t.Errorf("%s: %s: FC event types are defined in fc (fc.Types, fc.Type*)", path, lit.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
