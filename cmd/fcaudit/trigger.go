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
	"github.com/fcaudit/fcaudit/internal/timearg"
)

type triggerOptions struct {
	typ         string
	account     string
	url         string
	secret      string
	timeout     time.Duration
	created     string
	status      string
	institution string
	livemode    bool
	eventID     string
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

Defaults for --url and --secret come from DATA_DIR/dev.json, written by 'serve --dev'.

To stage the history Stripe really sends: --created sets the event's Stripe
created time (an older one arriving late does not change the status, as with
Stripe's out-of-order deliveries); --event-id resends an id already sent (a
redelivery, answered "duplicate": true); --status, --institution and
--livemode set those fields of the account snapshot.`,
		Example: `  fcaudit trigger created
  fcaudit trigger financial_connections.account.refreshed_balance --account fca_123
  fcaudit trigger deactivated --url http://localhost:8080/webhooks/stripe --secret whsec_…
  fcaudit trigger refreshed_balance --account fca_123 --created 2026-11-01T09:00:00Z   # arrives late
  fcaudit trigger created --account fca_123 --event-id evt_1QaB…                      # a redelivery`,
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
	fl.StringVar(&o.created, "created", "", "the event's Stripe created time `T` (RFC 3339 or Unix seconds); default now")
	fl.StringVar(&o.status, "status", "", "the account's status in the snapshot (active, inactive, disconnected, …); default the type's")
	fl.StringVar(&o.institution, "institution", "", "the account's institution_name; default StripeBank")
	fl.BoolVar(&o.livemode, "livemode", false, "mark the event and account as live mode")
	fl.StringVar(&o.eventID, "event-id", "", "the event id (evt_…); default a new random one. Reuse one to send a redelivery")
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
	now := time.Now()
	created := now.Unix()
	if o.created != "" {
		t, err := timearg.Parse(o.created)
		if err != nil {
			return flagError("created", err)
		}
		if created = t.Unix(); created <= 0 {
			return flagError("created", fmt.Errorf("%q is not after 1970-01-01", o.created))
		}
	}
	if o.eventID != "" && (!strings.HasPrefix(o.eventID, "evt_") || len(o.eventID) <= len("evt_")) {
		return flagError("event-id", fmt.Errorf("%q is not an event id (evt_…)", o.eventID))
	}
	if o.account == "" {
		o.account = fcevents.NewAccountID()
	}
	g := &fcevents.Generator{}
	body := g.EventWith(typ, o.account, created, fcevents.Options{
		EventID: o.eventID, Status: o.status, Institution: o.institution, Livemode: o.livemode})

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
