package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store"
)

// Page sizes.
const (
	accountsPageSize = 50
	historyPageSize  = 100
	replaysPageSize  = 50
	// maxShown bounds a stored string shown in a table cell or heading
	// (names are untrusted input of any length).
	maxShown = 120
)

var funcs = template.FuncMap{
	"clip":     func(s string) string { return clip(maxShown, s) },
	"clipLong": func(s string) string { return clip(2000, s) },
	"unix":     fmtUnix,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.RFC3339)
	},
	// Short times wrap between date and time in narrow table cells.
	"unixShort": func(ts int64) string { return time.Unix(ts, 0).UTC().Format("2006-01-02 15:04:05Z") },
	"timeShort": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"hex":       func(b [32]byte) string { return hex.EncodeToString(b[:]) },
	"pct":       func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"list":      func(s ...string) []string { return s },
	// shortType drops the prefix every FC account event type shares.
	"shortType": func(s string) string {
		if t, ok := strings.CutPrefix(s, fc.AccountEventPrefix); ok && t != "" {
			return "account." + t
		}
		return clip(maxShown, s)
	},
	"pathEsc": url.PathEscape,
	"status": func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	},
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(base, ".html")] = t
	}
	return out, nil
}

// page is what the layout renders.
type page struct {
	Title    string
	SignedIn bool
	Nav      string // the current section: accounts, replays, system
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error("render console page", "page", name, logkey.Err(err))
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, code int, msg string) {
	c.render(w, r, code, "error", page{Title: http.StatusText(code), SignedIn: s != nil,
		Data: struct {
			Code    int
			Message string
		}{code, msg}})
}

// fail answers a domain error: the client's mistakes with their message,
// anything else logged and answered 500 without details.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	c.log.Error("console request failed", "path", r.URL.Path, logkey.Err(err))
	c.renderError(w, r, s, http.StatusInternalServerError, "Something went wrong reading the event log or the read models; the server log has the details.")
}

// ---- sign-in ----

type signInData struct {
	Next    string
	Message string
}

// safeNext keeps a post-sign-in destination inside the console (no open
// redirect to another site).
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "accounts"
	}
	return next
}

func (c *Console) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	if s := c.sessions.fromRequest(r, c.now()); s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		c.renderError(w, r, nil, http.StatusForbidden, "This sign-in did not come from the console's own page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, nil, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	client := c.clientAddr(r)
	if blocked, wait := c.limiter.blocked(client); blocked {
		c.log.Warn("console sign-in refused: too many failures", "client", client)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		c.render(w, r, http.StatusTooManyRequests, "signin", page{Title: "Sign in", Data: signInData{Next: next,
			Message: fmt.Sprintf("Too many failed sign-ins. Try again in %s.", wait)}})
		return
	}
	fp, ok := c.sessions.tokenOK(strings.TrimSpace(r.PostForm.Get("token")))
	if !ok {
		c.limiter.fail(client)
		// Never the token itself: a mistyped token is most of a real one.
		c.log.Warn("console sign-in failed: unknown token", "client", client)
		c.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Data: signInData{Next: next,
			Message: "That token is not one of this server's API tokens."}})
		return
	}
	c.sessions.start(w, fp, c.now(), c.secure(r))
	c.log.Info("console sign-in", "client", client, "token_fingerprint", hex.EncodeToString(fp[:4]))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		c.renderError(w, r, nil, http.StatusForbidden, "This sign-out did not come from the console's own page.")
		return
	}
	c.sessions.end(w, c.sessions.fromRequest(r, c.now()), c.now(), c.secure(r))
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// ---- accounts ----

type accountsData struct {
	Counts   []statusCount
	Total    int64
	Filter   accountsFilter
	Accounts []projections.AccountStatus
	NextURL  string
	FirstURL string
	Error    string
}

type statusCount struct {
	Status string
	Count  int64
	URL    string
}

type accountsFilter struct {
	Status, Institution, Livemode, Prefix string
}

func (f accountsFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"status": f.Status, "institution": f.Institution, "livemode": f.Livemode, "prefix": f.Prefix} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (c *Console) handleAccounts(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := accountsData{Filter: accountsFilter{Status: q.Get("status"), Institution: q.Get("institution"),
		Livemode: q.Get("livemode"), Prefix: q.Get("prefix")}}
	o := projections.ListOptions{Status: d.Filter.Status, Institution: d.Filter.Institution, IDPrefix: d.Filter.Prefix,
		StartingAfter: q.Get("starting_after"), Limit: accountsPageSize}
	if d.Filter.Livemode != "" {
		b, err := strconv.ParseBool(d.Filter.Livemode)
		if err != nil {
			d.Error = "livemode must be true or false"
			d.Filter.Livemode = ""
		} else {
			o.Livemode = &b
		}
	}
	counts, err := c.cfg.Accounts.StatusCounts(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, st := range []string{"active", "inactive", "disconnected"} {
		d.Counts = append(d.Counts, statusCount{Status: st, Count: counts[st]})
	}
	for st, n := range counts {
		if st != "active" && st != "inactive" && st != "disconnected" {
			d.Counts = append(d.Counts, statusCount{Status: st, Count: n})
		}
	}
	for i := range d.Counts {
		d.Total += d.Counts[i].Count
		d.Counts[i].URL = Prefix + "accounts?status=" + url.QueryEscape(d.Counts[i].Status)
	}
	list, more, err := c.cfg.Accounts.Accounts(r.Context(), o)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d.Accounts = list
	if more && len(list) > 0 {
		v := d.Filter.values()
		v.Set("starting_after", list[len(list)-1].ID)
		d.NextURL = Prefix + "accounts?" + v.Encode()
	}
	if o.StartingAfter != "" {
		d.FirstURL = Prefix + "accounts?" + d.Filter.values().Encode()
	}
	c.render(w, r, http.StatusOK, "accounts", page{Title: "Accounts", SignedIn: true, Nav: "accounts", Data: d})
}

// ---- one account ----

type accountData struct {
	ID string
	// Status is the card's status (now, or at the time asked); nil when
	// the account did not exist then.
	Status *projections.AccountStatus
	// Mode is "", "as_of" or "known_at"; TimeInput what was asked.
	Mode, TimeInput  string
	At               time.Time
	TimeError        string
	Timeline         *timeline
	Rows             []historyRow
	Events           int
	Page, Pages      int
	PrevURL, NextURL string
	Verify           *audit.StreamReport
	BrokenChain      bool
	Downloads        struct{ Bundle, CSV, NDJSON string }
	Self             string
}

type historyRow struct {
	ID, Type, Source, Fingerprint string
	Created                       int64
	Received                      time.Time
	Delay                         string
	Revision                      uint64
	Position                      store.Position
	Status                        string
	Late, OutOfOrder              bool
	// After: the event lies after the time-travel point (created after
	// as_of, or received after known_at): the card does not include it.
	After   bool
	First   bool
	Changes []change
	DiffErr string
}

// readStream reads a whole stream in pages.
func (c *Console) readStream(ctx context.Context, stream string) ([]store.RecordedEvent, error) {
	const pageSize = 1000
	var out []store.RecordedEvent
	var from uint64
	for {
		p, err := c.cfg.Log.ReadStream(ctx, stream, from, pageSize)
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
		if len(p) < pageSize {
			return out, nil
		}
		from = p[len(p)-1].Revision + 1
	}
}

// memStream serves one stream already read, so the verification reads the
// log once with the rest of the page.
type memStream struct {
	stream string
	evs    []store.RecordedEvent
}

func (m memStream) ReadStream(_ context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error) {
	if stream != m.stream || len(m.evs) == 0 {
		return nil, fmt.Errorf("stream %s: %w", stream, store.ErrStreamNotFound)
	}
	i := 0
	for i < len(m.evs) && m.evs[i].Revision < from {
		i++
	}
	j := len(m.evs)
	if limit > 0 {
		j = min(j, i+limit)
	}
	return m.evs[i:j], nil
}

func (c *Console) handleAccount(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	q := r.URL.Query()
	d := accountData{ID: id, Self: Prefix + "accounts/" + url.PathEscape(id)}
	d.Downloads.Bundle = d.Self + "/evidence.zip"
	d.Downloads.CSV = d.Self + "/history.csv"
	d.Downloads.NDJSON = d.Self + "/history.ndjson"
	ctx := r.Context()
	stream := fc.AccountStream(id)
	evs, err := c.readStream(ctx, stream)
	if errors.Is(err, store.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		c.renderError(w, r, s, http.StatusNotFound, "No stored events for account "+strconv.Quote(clip(maxShown, id))+".")
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}

	// Time travel: the same parameters and the same fold as the API.
	var at projections.AsOf
	asOf, knownAt := q.Get("as_of"), q.Get("known_at")
	switch {
	case asOf != "" && knownAt != "":
		d.TimeError = "Ask one question at a time: as of (Stripe time) or known at (receipt time), not both."
	case asOf != "":
		d.Mode, d.TimeInput = "as_of", asOf
		t, err := timearg.Parse(asOf)
		if err != nil {
			d.TimeError = "as_of: " + err.Error()
		} else {
			d.At, at = t.UTC(), projections.AsOfCreated(t)
		}
	case knownAt != "":
		d.Mode, d.TimeInput = "known_at", knownAt
		t, err := timearg.Parse(knownAt)
		if err != nil {
			d.TimeError = "known_at: " + err.Error()
		} else {
			d.At, at = t.UTC(), projections.KnownAt(t)
		}
	}
	if d.TimeError != "" {
		d.Mode = ""
	}
	switch {
	case d.Mode != "":
		// AccountAt's own selection and fold (AsOfCreated, KnownAt:
		// their edges included), over the stream this page has read
		// already.
		d.Status, err = projections.FoldAt(evs, at)
	default:
		d.Status, err = c.cfg.Accounts.Account(ctx, id)
		if errors.Is(err, projections.ErrAccountNotFound) {
			// The read model lags behind the log: fold the log itself.
			d.Status, err = projections.FoldAt(evs, projections.AsOf{})
		}
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}

	d.Verify, err = audit.VerifyStream(ctx, memStream{stream: stream, evs: evs}, stream, audit.VerifyOptions{Signatures: c.cfg.Signatures})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d.BrokenChain = d.Verify.FirstBroken != nil

	h, err := newAccountHistory(evs)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	var marker int64
	if d.Mode == "as_of" {
		marker = d.At.Unix()
	}
	d.Timeline = h.timeline(marker)
	d.Events = len(h.entries)
	d.Pages = max(1, (len(h.entries)+historyPageSize-1)/historyPageSize)
	d.Page = 1
	if p := q.Get("page"); p != "" {
		if n, err := strconv.Atoi(p); err == nil && n >= 1 {
			d.Page = min(n, d.Pages)
		}
	}
	lo, hi := (d.Page-1)*historyPageSize, min(d.Page*historyPageSize, len(h.entries))
	for i := lo; i < hi; i++ {
		e := h.entries[i]
		row := historyRow{ID: e.ev.ID, Type: e.ev.Type, Source: e.ev.Source, Created: e.ev.Created,
			Received: e.ev.ReceivedAt, Delay: fmtDelay(e.ev.ReceivedAt.Sub(time.Unix(e.ev.Created, 0))),
			Revision: e.ev.Revision, Position: e.ev.Position, Status: e.Status, Late: e.Late, OutOfOrder: e.OutOfOrder,
			First: i == 0}
		if p := e.ev.Provenance; p != nil {
			row.Fingerprint = p.SecretFingerprint
		}
		row.After = d.Mode != "" && !at.Includes(e.ev)
		var prev []byte
		if i > 0 {
			prev = h.entries[i-1].ev.Data
		}
		row.Changes, err = changes(prev, e.ev.Data)
		if err != nil {
			row.DiffErr = err.Error()
		}
		d.Rows = append(d.Rows, row)
	}
	pageURL := func(n int) string {
		v := url.Values{}
		if d.Mode != "" {
			v.Set(d.Mode, d.TimeInput)
		}
		v.Set("page", strconv.Itoa(n))
		return d.Self + "?" + v.Encode() + "#history"
	}
	if d.Page > 1 {
		d.PrevURL = pageURL(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = pageURL(d.Page + 1)
	}
	code := http.StatusOK
	if d.TimeError != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "account", page{Title: "Account " + clip(maxShown, id), SignedIn: true, Nav: "accounts", Data: d})
}

// loadHistory is the export's history (audit.LoadHistory), or an answered
// error.
func (c *Console) loadHistory(w http.ResponseWriter, r *http.Request, s *session) *audit.History {
	id := r.PathValue("id")
	h, err := audit.LoadHistory(r.Context(), c.cfg.Log, audit.ExportOptions{Account: id})
	if errors.Is(err, audit.ErrUnknownAccount) {
		c.renderError(w, r, s, http.StatusNotFound, "No stored events for account "+strconv.Quote(clip(maxShown, id))+".")
		return nil
	}
	if err != nil {
		c.fail(w, r, s, err)
		return nil
	}
	return h
}

// download sends body as an attachment. Built in memory first, so an error
// is a clean error page and not a truncated file.
func download(w http.ResponseWriter, name, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// fileSafe keeps ids usable in a download's file name.
func fileSafe(s string) string {
	return clip(80, strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s))
}

func (c *Console) handleBundle(w http.ResponseWriter, r *http.Request, s *session) {
	h := c.loadHistory(w, r, s)
	if h == nil {
		return
	}
	name := "fcaudit-evidence-" + fileSafe(h.Account)
	var buf bytes.Buffer
	res, err := audit.WriteBundleZip(&buf, h, name+"/", c.now())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Fcaudit-Manifest-Sha256", res.ManifestSHA256)
	download(w, name+".zip", "application/zip", buf.Bytes())
}

func (c *Console) handleCSV(w http.ResponseWriter, r *http.Request, s *session) {
	h := c.loadHistory(w, r, s)
	if h == nil {
		return
	}
	var buf bytes.Buffer
	if err := h.WriteCSV(&buf); err != nil {
		c.fail(w, r, s, err)
		return
	}
	download(w, "fcaudit-"+fileSafe(h.Account)+".csv", "text/csv; charset=utf-8", buf.Bytes())
}

func (c *Console) handleNDJSON(w http.ResponseWriter, r *http.Request, s *session) {
	h := c.loadHistory(w, r, s)
	if h == nil {
		return
	}
	var buf bytes.Buffer
	if err := h.WriteNDJSON(&buf); err != nil {
		c.fail(w, r, s, err)
		return
	}
	download(w, "fcaudit-"+fileSafe(h.Account)+".ndjson", "application/x-ndjson", buf.Bytes())
}

// ---- one event ----

type eventData struct {
	Ev         store.RecordedEvent
	Account    string
	Payload    string
	PayloadOK  bool
	BodyURL    string
	AccountURL string
}

func (c *Console) lookupEvent(w http.ResponseWriter, r *http.Request, s *session) (store.RecordedEvent, bool) {
	id := r.PathValue("id")
	ev, err := c.cfg.Log.EventByID(r.Context(), id)
	if errors.Is(err, store.ErrEventNotFound) {
		c.renderError(w, r, s, http.StatusNotFound, "No stored event "+strconv.Quote(clip(maxShown, id))+".")
		return ev, false
	}
	if err != nil {
		c.fail(w, r, s, err)
		return ev, false
	}
	return ev, true
}

func (c *Console) handleEvent(w http.ResponseWriter, r *http.Request, s *session) {
	ev, ok := c.lookupEvent(w, r, s)
	if !ok {
		return
	}
	d := eventData{Ev: ev, Account: fc.AccountOf(ev.Stream), BodyURL: Prefix + "events/" + url.PathEscape(ev.ID) + "/body"}
	if d.Account != "" {
		d.AccountURL = Prefix + "accounts/" + url.PathEscape(d.Account)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, ev.Data, "", "  "); err == nil {
		d.Payload, d.PayloadOK = buf.String(), true
	} else {
		d.Payload = string(ev.Data)
	}
	c.render(w, r, http.StatusOK, "event", page{Title: "Event " + clip(maxShown, ev.ID), SignedIn: true, Nav: "accounts", Data: d})
}

// handleEventBody sends the exact stored bytes (body_sha256 is over them).
func (c *Console) handleEventBody(w http.ResponseWriter, r *http.Request, s *session) {
	ev, ok := c.lookupEvent(w, r, s)
	if !ok {
		return
	}
	download(w, fileSafe(ev.ID)+".json", "application/octet-stream", ev.Data)
}

// ---- replays ----

type replaysData struct {
	Runs     []replayRow
	NextURL  string
	FirstURL string
}

type replayRow struct {
	replay.RunRecord
	URL    string
	Target string
}

func replayRowOf(rec replay.RunRecord) replayRow {
	row := replayRow{RunRecord: rec, URL: Prefix + "replays/" + url.PathEscape(rec.ID)}
	// Recorded redacted; redacted again in case an older version did not.
	if rec.Target.Kind == "http" {
		row.Target = replay.RedactURL(rec.Target.URL)
		row.RunRecord.Target.URL = row.Target
	} else {
		row.Target = rec.Target.String()
	}
	return row
}

func (c *Console) handleReplays(w http.ResponseWriter, r *http.Request, s *session) {
	after := r.URL.Query().Get("starting_after")
	runs, more, err := replay.ListRuns(r.Context(), c.cfg.Log, after, replaysPageSize)
	if errors.Is(err, replay.ErrRunNotFound) {
		c.renderError(w, r, s, http.StatusBadRequest, "starting_after: no such replay run.")
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	var d replaysData
	for _, rec := range runs {
		d.Runs = append(d.Runs, replayRowOf(rec))
	}
	if more && len(runs) > 0 {
		d.NextURL = Prefix + "replays?starting_after=" + url.QueryEscape(runs[len(runs)-1].ID)
	}
	if after != "" {
		d.FirstURL = Prefix + "replays"
	}
	c.render(w, r, http.StatusOK, "replays", page{Title: "Replay runs", SignedIn: true, Nav: "replays", Data: d})
}

type replayData struct {
	Run       replayRow
	Selection string
	Settings  string
	Counts    string
}

func (c *Console) handleReplay(w http.ResponseWriter, r *http.Request, s *session) {
	rec, err := replay.GetRun(r.Context(), c.cfg.Log, r.PathValue("id"))
	if errors.Is(err, replay.ErrRunNotFound) {
		c.renderError(w, r, s, http.StatusNotFound, "No replay run "+strconv.Quote(clip(maxShown, r.PathValue("id")))+".")
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := replayData{Run: replayRowOf(*rec)}
	indent := func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	}
	d.Selection, d.Settings, d.Counts = indent(rec.Selection), indent(rec.Settings), indent(rec.Counts)
	c.render(w, r, http.StatusOK, "replay", page{Title: "Replay run " + clip(maxShown, rec.ID), SignedIn: true, Nav: "replays", Data: d})
}

// ---- system ----

type systemData struct {
	Version, Backend string
	Head             store.Position
	HeadErr          string
	Projections      []projections.Status
	ProjErr          string
	Reconcile        *backfill.Result
	ReconcileOn      bool
	Now              time.Time
}

func (c *Console) handleSystem(w http.ResponseWriter, r *http.Request, s *session) {
	d := systemData{Version: c.cfg.Version, Backend: c.cfg.Backend, Now: c.now().UTC()}
	var err error
	if d.Head, err = c.cfg.Log.Head(r.Context()); err != nil {
		d.HeadErr = err.Error()
	}
	if c.cfg.Projections != nil {
		if d.Projections, err = c.cfg.Projections.Status(r.Context()); err != nil {
			d.ProjErr = err.Error()
		}
	}
	if c.cfg.Reconciliation != nil {
		d.ReconcileOn = true
		if res, ok := c.cfg.Reconciliation.Last(); ok {
			d.Reconcile = &res
		}
	}
	c.render(w, r, http.StatusOK, "system", page{Title: "System", SignedIn: true, Nav: "system", Data: d})
}
