package logkey

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// reserved are the keys that have a constant here: a log call must use the
// constant (or Err), not the literal, nor a variant of it.
var reserved = map[string]string{
	"err": "Err(err)", "error": "Err(err)", "e": "Err(err)",
	"id": "EventID", "event_id": "EventID", "evt": "EventID",
	"type": "EventType", "event_type": "EventType",
	"stream": "Stream",
}

var logMethods = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"Log": true, "LogAttrs": true, "With": true,
}

// TestLogCallsUseCanonicalKeys scans every non-test Go file of the module
// for calls of slog's logging methods on a logger (a receiver whose name
// mentions "log") and fails on an attribute key written as a literal that
// has a constant here, and on an error variable logged under any key but
// Err's.
func TestLogCallsUseCanonicalKeys(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || (strings.HasPrefix(n, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isLogCall(call) {
				return true
			}
			checkArgs(t, fset, call.Args)
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("scanned %d files from %s: not the module root?", files, root)
	}
}

func isLogCall(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !logMethods[sel.Sel.Name] {
		return false
	}
	var recv string
	switch x := sel.X.(type) {
	case *ast.Ident:
		recv = x.Name
	case *ast.SelectorExpr:
		recv = x.Sel.Name
	case *ast.CallExpr: // e.g. f.logger().Warn
		if s, ok := x.Fun.(*ast.SelectorExpr); ok {
			recv = s.Sel.Name
		} else if id, ok := x.Fun.(*ast.Ident); ok {
			recv = id.Name
		}
	}
	return strings.Contains(strings.ToLower(recv), "log")
}

// checkArgs reports literal reserved keys among args (and inside slog.X(key,
// …) attribute constructors) and error variables not logged with Err.
func checkArgs(t *testing.T, fset *token.FileSet, args []ast.Expr) {
	t.Helper()
	for _, a := range args {
		switch x := a.(type) {
		case *ast.BasicLit:
			if k, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING {
				if want, bad := reserved[k]; bad {
					t.Errorf("%s: log key %q: use logkey.%s", fset.Position(x.Pos()), k, want)
				}
			}
		case *ast.Ident:
			if isErrName(x.Name) {
				t.Errorf("%s: error %s logged under a key of its own: use logkey.Err(%s)", fset.Position(x.Pos()), x.Name, x.Name)
			}
		case *ast.CallExpr:
			if s, ok := x.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := s.X.(*ast.Ident); ok && pkg.Name == "slog" && len(x.Args) > 0 {
					checkArgs(t, fset, x.Args[:1])
					checkValue(t, fset, x.Args[1:])
				}
			}
		}
	}
}

// checkValue reports an error passed as the value of a slog.X attribute.
func checkValue(t *testing.T, fset *token.FileSet, args []ast.Expr) {
	t.Helper()
	for _, a := range args {
		e := a
		if c, ok := a.(*ast.CallExpr); ok { // err.Error()
			if s, ok := c.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "Error" {
				e = s.X
			}
		}
		if id, ok := e.(*ast.Ident); ok && (isErrName(id.Name)) {
			t.Errorf("%s: error %s logged with slog: use logkey.Err(%s)", fset.Position(id.Pos()), id.Name, id.Name)
		}
	}
}

// isErrName reports whether name is how this code names an error variable
// (err, werr, nerr, closeErr, …).
func isErrName(name string) bool { return strings.HasSuffix(strings.ToLower(name), "err") }
