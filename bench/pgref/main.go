// Command pgref is the PostgreSQL reference webhook handler that fcaudit's
// whole-service benchmark (bench/compare, target "postgres") compares
// against: what a user would build on Postgres instead of fcaudit (bench
// tooling, not part of the fcaudit binary, and a module of its own so the
// fcaudit module does not depend on a Postgres driver).
//
// Per request: stripe-go's webhook.ConstructEventWithOptions
// (IgnoreAPIVersionMismatch, as bench/refserver), then one
// INSERT … ON CONFLICT (id) DO NOTHING of the raw body into PostgreSQL with
// pgx/v5 through a pgxpool, in its own transaction, answered 200 after the
// commit. Every connection sets synchronous_commit=on, so the commit has
// returned only once its WAL record is flushed (the server must run with
// fsync=on; bench/postgres.sh checks it). Concurrent commits share WAL
// flushes — Postgres's own group commit — so the pool size matters: -pool
// bounds how many commits can wait on one flush at once.
//
// It answers like fcaudit, {"id":"evt_…","duplicate":bool}, and uses
// fcaudit's HTTP server settings (timeouts, header and body limits).
//
// Usage:
//
//	pgref -listen 127.0.0.1:9003 -secret whsec_… -dsn postgres://user@127.0.0.1:5432/db -pool 16 -reset
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/webhook"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9003", "address to listen on")
	secret := flag.String("secret", os.Getenv("STRIPE_WEBHOOK_SECRET"), "webhook signing secret (env STRIPE_WEBHOOK_SECRET)")
	dsn := flag.String("dsn", os.Getenv("PGREF_DSN"), "PostgreSQL connection string (env PGREF_DSN)")
	pool := flag.Int("pool", 16, "pgxpool size (max connections)")
	table := flag.String("table", "webhook_events", "table to insert into")
	reset := flag.Bool("reset", false, "drop and re-create the table first (a fresh store per benchmark run)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *secret, *dsn, *table, int32(*pool), *reset, log); err != nil {
		fmt.Fprintln(os.Stderr, "pgref:", err)
		os.Exit(1)
	}
}

func run(listen, secret, dsn, table string, poolSize int32, reset bool, log *slog.Logger) error {
	if secret == "" {
		return errors.New("no -secret")
	}
	if dsn == "" {
		return errors.New("no -dsn")
	}
	if poolSize < 1 {
		return errors.New("-pool must be ≥ 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("-dsn: %w", err)
	}
	cfg.MaxConns, cfg.MinConns = poolSize, poolSize
	// Durable commits whatever the server's default says.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var fsync string
	if err := db.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if fsync != "on" {
		return fmt.Errorf("the server runs with fsync=%s: commits would not be durable", fsync)
	}
	quoted := `"` + table + `"`
	if reset {
		if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+quoted); err != nil {
			return err
		}
	}
	// The same columns as bench/refserver's hand-written SQLite handler;
	// the body is stored as the bytes that were signed.
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+quoted+` (
		id text PRIMARY KEY, type text NOT NULL, created bigint NOT NULL,
		received_at timestamptz NOT NULL, body bytea NOT NULL)`); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	h := &handler{secret: secret, db: db,
		insert: `INSERT INTO ` + quoted + ` (id, type, created, received_at, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`}

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
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("pgref listening", "addr", ln.Addr().String(), "pool", poolSize)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type handler struct {
	secret string
	db     *pgxpool.Pool
	insert string
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
	// Autocommit: the INSERT is its own transaction, durable when Exec
	// returns.
	tag, err := h.db.Exec(r.Context(), h.insert, ev.ID, string(ev.Type), ev.Created, time.Now(), body)
	if err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}{ev.ID, tag.RowsAffected() == 0})
}
