package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

type healthcheckOptions struct {
	listen  string
	url     string
	timeout time.Duration
}

func newHealthcheckCommand(f *factory) *cobra.Command {
	o := &healthcheckOptions{}
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a local serve answers /healthz (for container HEALTHCHECKs)",
		Long: `healthcheck asks a running serve for GET /healthz and exits 0 on 200, 1 otherwise.
It exists for container images without curl or wget (the Dockerfile's
HEALTHCHECK): it reads the same --listen / FCAUDIT_LISTEN as serve, so the
check follows the server's configuration; a wildcard host (0.0.0.0, [::]) is
asked on loopback.`,
		Example: `  fcaudit healthcheck
  FCAUDIT_LISTEN=0.0.0.0:8080 fcaudit healthcheck
  fcaudit healthcheck --url http://127.0.0.1:9000/healthz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runHealthcheck(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", envOr("FCAUDIT_LISTEN", "127.0.0.1:8080"), "serve's listen address (env FCAUDIT_LISTEN)")
	fl.StringVar(&o.url, "url", "", "the health URL to ask instead (overrides --listen)")
	fl.DurationVar(&o.timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

func runHealthcheck(ctx context.Context, f *factory, o *healthcheckOptions) error {
	target := o.url
	if target == "" {
		host, port, err := net.SplitHostPort(o.listen)
		if err != nil {
			return flagError("listen", err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		target = "http://" + net.JoinHostPort(host, port) + "/healthz"
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return flagError("url", fmt.Errorf("%q is not an http(s) URL", o.url))
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return flagError("url", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", target, resp.Status)
	}
	fmt.Fprintf(f.out, "ok: %s\n", target)
	return nil
}
