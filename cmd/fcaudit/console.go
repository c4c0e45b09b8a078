package main

import (
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/console"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// consoleKeyFile holds the console's session-signing key in the data dir.
const consoleKeyFile = "console-session.key"

// newConsole builds the web console for serve (nil when --console=false):
// the read models, the event log and serve's own webhook secrets and API
// tokens, the same parts the /v1 routes use.
func newConsole(f *factory, o *serveOptions, st store.Store, proj *projections.Runner, sigs *ingest.Verifier, tokens *api.TokenSet,
	rec *backfill.Reconciler, log *slog.Logger) (http.Handler, error) {
	if !o.console {
		return nil, nil
	}
	backend := "embedded SQLite in " + f.dataDir
	if f.eventStore != "" {
		backend = "EventStoreDB"
	}
	cfg := console.Config{Accounts: proj, Projections: proj, Log: st, Signatures: sigs, TokenSet: tokens,
		KeyFile: filepath.Join(f.dataDir, consoleKeyFile), TrustProxy: o.trustProxy, Backend: backend, Version: versionString(), Logger: log}
	if rec != nil {
		cfg.Reconciliation = rec
	}
	return console.New(cfg)
}
