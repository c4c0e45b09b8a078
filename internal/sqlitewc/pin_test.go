package sqlitewc

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// verifiedModules are the modernc versions this package's tests last
// passed against. The VFS writes Go functions into the structs of
// modernc's transpiled SQLite and relies on the unix VFS's behaviour (its
// 128 KiB write mask, its io_methods layout), which any release may change.
// After upgrading either module, run
//
//	go test -race -count=1 ./internal/sqlitewc ./store/sqlite ./projections ./e2e
//
// and only when they pass update these pins (until then, serve and the
// other writing commands can run with --sqlite-vfs unix).
var verifiedModules = map[string]string{
	"modernc.org/sqlite": "v1.62.0",
	"modernc.org/libc":   "v1.80.1",
}

// TestModerncVersionsPinned fails when go.mod requires (or replaces) the
// modernc modules with other versions than the VFS was verified against.
// (A test binary carries no module versions, so it reads go.mod.)
func TestModerncVersionsPinned(t *testing.T) {
	const gomod = "../../go.mod"
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax(gomod, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Replace {
		if pinned, ok := verifiedModules[r.Old.Path]; ok {
			t.Errorf("%s replaces %s: the write-combining VFS was verified against %s only: re-run the VFS tests and update the pin (verifiedModules in internal/sqlitewc/pin_test.go)", gomod, r.Old.Path, pinned)
		}
	}
	required := map[string]string{}
	for _, r := range f.Require {
		required[r.Mod.Path] = r.Mod.Version
	}
	for path, pinned := range verifiedModules {
		got, ok := required[path]
		switch {
		case !ok:
			t.Errorf("%s does not require %s (the VFS is built on it)", gomod, path)
		case got != pinned:
			t.Errorf("%s requires %s %s, but the write-combining VFS was verified against %s: re-run the VFS tests and update the pin (verifiedModules in internal/sqlitewc/pin_test.go)", gomod, path, got, pinned)
		}
	}
}
