package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

type triggerOptions struct {
	typ     string
	account string
	url     string
	secret  string
	timeout time.Duration
}

func newTriggerCommand(f *factory) *cobra.Command {
	o := &triggerOptions{}
	cmd := &cobra.Command{
		Use:   "trigger TYPE",
		Short: "Send a realistic, correctly signed FC event to a running server",
		Long: `trigger generates a realistic Stripe Financial Connections event of TYPE, signs it
as Stripe would, and POSTs it to a running fcaudit (or any webhook endpoint).

TYPE is a full event type or its last part (created, refreshed_balance, …):
  ` + strings.Join(fc.Types(), "\n  ") + `

Defaults for --url and --secret come from DATA_DIR/dev.json, written by 'serve --dev'.`,
		Example: `  fcaudit trigger created
  fcaudit trigger financial_connections.account.refreshed_balance --account fca_123
  fcaudit trigger deactivated --url http://localhost:8080/webhooks/stripe --secret whsec_…`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.typ = args[0]
			return runTrigger(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.account, "account", "", "FC account id (fca_…); default: a new random account")
	fl.StringVar(&o.url, "url", "", "webhook endpoint (default: the dev server's, from DATA_DIR/dev.json)")
	fl.StringVar(&o.secret, "secret", "", "webhook signing secret (default: STRIPE_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET_FILE, else DATA_DIR/dev.json)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "request timeout")
	return cmd
}

// resolveType accepts a full FC event type or its short name (fc.Lookup).
func resolveType(s string) (string, error) {
	if t, ok := fc.Lookup(s); ok {
		return t, nil
	}
	return "", &usageError{fmt.Errorf("unknown event type %q; one of: %s", s, strings.Join(fc.Types(), ", "))}
}

func runTrigger(ctx context.Context, f *factory, o *triggerOptions) error {
	typ, err := resolveType(o.typ)
	if err != nil {
		return err
	}
	if o.account != "" && !strings.HasPrefix(o.account, "fca_") {
		return flagError("account", fmt.Errorf("%q is not an FC account id (fca_…)", o.account))
	}
	if err := webhookTarget(f.dataDir, &o.url, &o.secret); err != nil {
		return err
	}
	if o.account == "" {
		o.account = fcevents.NewAccountID()
	}
	g := &fcevents.Generator{}
	now := time.Now()
	body := g.Event(typ, o.account, now.Unix())

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return flagError("url", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", fcevents.Sign(body, o.secret, now))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send to %s: %w", o.url, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(f.errOut, "sent %s for account %s to %s: %s\n", typ, o.account, o.url, resp.Status)
	fmt.Fprintln(f.out, strings.TrimSpace(string(answer)))
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("server answered %s", resp.Status)}
	}
	return nil
}
