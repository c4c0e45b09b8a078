package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/projections"
)

func newAccountsCommand(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "Show an account's status (now or at a past time) and its history",
		Long: `accounts answers an auditor's questions from the local store, without the API
or a token: what an account's status is, was at a Stripe time (--as-of) or was
as fcaudit knew it at a time (--known-at), and which events made it so. It
reads the event log read-only (like verify), so it works while serve runs, and
folds the account's stream with the same code as GET /v1/accounts/{id}.`,
		Example: `  fcaudit accounts show fca_1OeX…
  fcaudit accounts show fca_1OeX… --as-of 2026-11-30T23:59:59Z
  fcaudit accounts history fca_1OeX… --json`,
	}
	cmd.AddCommand(newAccountsShowCommand(f), newAccountsHistoryCommand(f))
	return cmd
}

type accountsShowOptions struct {
	asOf, knownAt string
	json          bool
}

func newAccountsShowCommand(f *factory) *cobra.Command {
	o := &accountsShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print an account's status: now, --as-of a Stripe time, or --known-at a receipt time",
		Long: `show prints one account's status, folded from its whole event stream (so it is
exact even while the projections lag behind the log). Without a time it is the
current status, as GET /v1/accounts/{id}. --as-of T keeps the events Stripe
created at or before T (what was true then); --known-at T keeps the events
fcaudit had received at or before T (what fcaudit knew then), as the API's
as_of and known_at. T is RFC 3339 or Unix seconds.

The table's last line holds the status; --json prints the API's account_status
object. Exit status 1 when the account has no event (at that time).`,
		Example: `  fcaudit accounts show fca_1OeX…
  fcaudit accounts show fca_1OeX… --known-at 2026-11-30T12:00:00Z --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountsShow(cmd.Context(), f, args[0], o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.asOf, "as-of", "", "status from the events Stripe created at or before `T`")
	fl.StringVar(&o.knownAt, "known-at", "", "status from the events fcaudit received at or before `T`")
	fl.BoolVar(&o.json, "json", false, "print the account_status object as JSON instead of a table")
	cmd.MarkFlagsMutuallyExclusive("as-of", "known-at")
	return cmd
}

// parseAsOf turns --as-of / --known-at into the fold's selection, with the
// API's rules (projections.AsOfCreated and KnownAt select nothing at or
// before the epoch and at the zero time).
func (o *accountsShowOptions) parseAsOf() (at projections.AsOf, err error) {
	if o.asOf != "" {
		t, err := timearg.Parse(o.asOf)
		if err != nil {
			return at, flagError("as-of", err)
		}
		return projections.AsOfCreated(t), nil
	}
	if o.knownAt != "" {
		t, err := timearg.Parse(o.knownAt)
		if err != nil {
			return at, flagError("known-at", err)
		}
		return projections.KnownAt(t), nil
	}
	return at, nil
}

func runAccountsShow(ctx context.Context, f *factory, id string, o *accountsShowOptions) error {
	at, err := o.parseAsOf()
	if err != nil {
		return err
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := projections.Open(filepath.Join(f.dataDir, projections.FileName), st, projections.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%w (run serve or 'fcaudit projections rebuild' first)", err)
	}
	defer r.Close()
	s, err := r.AccountAt(ctx, id, at)
	if errors.Is(err, projections.ErrAccountNotFound) {
		when := ""
		if o.asOf != "" || o.knownAt != "" {
			when = " at that time"
		}
		return &exitError{code: exitFailure, msg: fmt.Sprintf("accounts show: no event for account %q%s (is --data-dir right?)", id, when)}
	}
	if err != nil {
		return err
	}
	if o.json {
		return writeJSONOut(f, s)
	}
	tw := tabwriter.NewWriter(f.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLIVEMODE\tINSTITUTION\tLAST4\tEVENTS\tLAST EVENT\tLAST EVENT CREATED\tSTATUS")
	fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%d\t%s\t%s\t%s\n", s.ID, s.Livemode, dash(s.InstitutionName), dash(s.Last4),
		s.EventsCount, strings.TrimPrefix(s.LastEvent.Type, "financial_connections."), unixTime(s.LastEvent.Created), s.Status)
	return tw.Flush()
}

type accountsHistoryOptions struct {
	json bool
}

func newAccountsHistoryCommand(f *factory) *cobra.Command {
	o := &accountsHistoryOptions{}
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "List an account's events in store order with the status after each",
		Long: `history lists every stored event of one account in store (arrival) order: its
revision, Stripe created time, receipt time, type, id, whether it became the
account's snapshot (an older event arriving late does not), and the status after
it — the same timeline as an export bundle's status_timeline.json, which --json
prints.`,
		Example: `  fcaudit accounts history fca_1OeX…
  fcaudit accounts history fca_1OeX… --json | jq '.[].status_after.status'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountsHistory(cmd.Context(), f, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the timeline as a JSON array instead of a table")
	return cmd
}

func runAccountsHistory(ctx context.Context, f *factory, id string, o *accountsHistoryOptions) error {
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := audit.LoadHistory(ctx, st, audit.ExportOptions{Account: id})
	if errors.Is(err, audit.ErrUnknownAccount) {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("accounts history: no stored events for account %q (is --data-dir right?)", id)}
	}
	if err != nil {
		return err
	}
	tl := h.Timeline()
	if o.json {
		return writeJSONOut(f, tl)
	}
	tw := tabwriter.NewWriter(f.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REV\tCREATED\tRECEIVED\tTYPE\tEVENT\tSNAPSHOT\tSTATUS AFTER")
	for _, e := range tl {
		snap := "no (older)"
		if e.Snapshot {
			snap = "yes"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Revision, unixTime(e.Created), e.ReceivedAt,
			strings.TrimPrefix(e.Type, "financial_connections."), e.ID, snap, e.StatusAfter.Status)
	}
	if h.Check.FirstBroken != nil {
		tw.Flush()
		return &exitError{code: exitFailure, msg: fmt.Sprintf("accounts history: the account's hash chain is BROKEN: %s", h.Check.FirstBroken)}
	}
	return tw.Flush()
}

func writeJSONOut(f *factory, v any) error {
	enc := json.NewEncoder(f.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func unixTime(s int64) string {
	if s == 0 {
		return "-"
	}
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
