// Command refserver is one of the reference webhook handlers fcaudit's
// whole-service benchmark compares against (bench tooling, not part of the
// fcaudit binary):
//
//   - -mode verify: stripe-go's webhook.ConstructEventWithOptions
//     (IgnoreAPIVersionMismatch), answer 200, store nothing — the ceiling
//     for any handler that verifies signatures.
//   - -mode handwritten: the handler users write by hand — the same
//     verification, then one SQLite INSERT per request in its own
//     transaction (modernc.org/sqlite, WAL, synchronous=FULL), answered 200
//     after the commit. Its writes go through a single connection, the best
//     case for this design: with a pool, writers would also wait on
//     SQLITE_BUSY.
//
// Both answer like fcaudit, {"id":"evt_…","duplicate":bool} (verify mode
// cannot detect duplicates and always says false), so loadgen checks them
// the same way, and use fcaudit's HTTP server settings (timeouts, header and
// body limits).
//
// Usage:
//
//	refserver -mode verify -listen 127.0.0.1:9001 -secret whsec_…
//	refserver -mode handwritten -listen 127.0.0.1:9002 -secret whsec_… -db /tmp/ref/events.db
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	_ "modernc.org/sqlite"
)

func main() {
	mode := flag.String("mode", "verify", "verify or handwritten")
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	secret := flag.String("secret", os.Getenv("STRIPE_WEBHOOK_SECRET"), "webhook signing secret (env STRIPE_WEBHOOK_SECRET)")
	dbPath := flag.String("db", "", "SQLite file for -mode handwritten")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*mode, *listen, *secret, *dbPath, log); err != nil {
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(1)
	}
}

func run(mode, listen, secret, dbPath string, log *slog.Logger) error {
	if secret == "" {
		return errors.New("no -secret")
	}
	h := &handler{secret: secret}
	switch mode {
	case "verify":
	case "handwritten":
		if dbPath == "" {
			return errors.New("-mode handwritten needs -db")
		}
		db, err := openDB(dbPath)
		if err != nil {
			return err
		}
		defer db.Close()
		h.db = db
	default:
		return fmt.Errorf("-mode %q: want verify or handwritten", mode)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/stripe", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// The same settings as api.Server.Open.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("refserver listening", "mode", mode, "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func openDB(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, err
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}
	db, err := sql.Open("sqlite", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS events (
		id TEXT PRIMARY KEY, type TEXT NOT NULL, created INTEGER NOT NULL,
		received_at INTEGER NOT NULL, body BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create table: %w", err)
	}
	return db, nil
}

type handler struct {
	secret string
	db     *sql.DB // nil in verify mode
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), h.secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		http.Error(w, "signature or payload invalid", http.StatusBadRequest)
		return
	}
	dup := false
	if h.db != nil {
		// Autocommit: the INSERT is its own transaction, one fsync each.
		res, err := h.db.ExecContext(r.Context(), `INSERT OR IGNORE INTO events (id, type, created, received_at, body) VALUES (?, ?, ?, ?, ?)`,
			ev.ID, string(ev.Type), ev.Created, time.Now().UnixMicro(), body)
		if err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		n, _ := res.RowsAffected()
		dup = n == 0
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}{ev.ID, dup})
}
