package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
)

// loopbackOnly accepts a listen address on the loopback interface only
// (127.0.0.0/8, ::1 or localhost): pprof has no authentication and its
// /debug/pprof/cmdline shows the command line, secrets included.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("profiles are unauthenticated and show the command line: listen on a loopback address (e.g. 127.0.0.1:6060), not %q", addr)
}

// startPprof serves net/http/pprof on its own listener at addr (serve
// --pprof), never on the public router: profiles reveal internals, so they
// are opt-in and belong on a loopback or otherwise private address. The
// handlers are mounted on a private mux, not http.DefaultServeMux. It
// returns a function that closes the listener.
func startPprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, flagError("pprof", fmt.Errorf("listen: %w", err))
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", logkey.Err(err))
		}
	}()
	log.Info("pprof listening", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}
