package ingest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

const (
	secretA = "whsec_test_primary_0123456789abcdef"
	secretB = "whsec_test_rotated_fedcba9876543210"
	secretX = "whsec_test_unknown"
)

// testNow is the fixed clock of the tests: 2024-01-15T10:00:00Z.
var testNow = time.Unix(1705312800, 0).UTC()

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func allFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, pat := range []string{"*.json", "variants/*.json"} {
		names, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", pat))
		if err != nil {
			tb.Fatal(err)
		}
		for _, n := range names {
			rel, _ := filepath.Rel(filepath.Join("..", "testdata", "stripe"), n)
			out[rel] = fixture(tb, rel)
		}
	}
	if len(out) < 10 {
		tb.Fatalf("found %d fixtures, want 10", len(out))
	}
	return out
}

// sign returns a Stripe-Signature header made by stripe-go's test helper.
func sign(body []byte, secret string, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: t}).Header
}

// v1 returns the hex v1 signature of body under secret at t.
func v1(body []byte, secret string, t time.Time) string {
	return hex.EncodeToString(webhook.ComputeSignature(t, body, secret))
}

func newVerifier(tb testing.TB, secrets ...string) *Verifier {
	tb.Helper()
	v, err := NewVerifier(secrets, 5*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	v.Now = func() time.Time { return testNow }
	return v
}

func TestNewVerifier(t *testing.T) {
	tests := []struct {
		name      string
		secrets   []string
		tolerance time.Duration
		wantErr   bool
	}{
		{"one secret", []string{secretA}, time.Minute, false},
		{"two secrets", []string{secretA, secretB}, time.Minute, false},
		{"no secrets", nil, time.Minute, true},
		{"empty secret", []string{secretA, ""}, time.Minute, true},
		{"zero tolerance", []string{secretA}, 0, true},
		{"negative tolerance", []string{secretA}, -time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.secrets, tt.tolerance)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				for _, s := range tt.secrets {
					if s != "" && strings.Contains(err.Error(), s) {
						t.Errorf("error %q reveals a secret", err)
					}
				}
				return
			}
			if got := len(v.Fingerprints()); got != len(tt.secrets) {
				t.Errorf("%d fingerprints, want %d", got, len(tt.secrets))
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	// echo -n whsec_test_primary_0123456789abcdef | sha256sum, first 16 hex digits.
	got := Fingerprint(secretA)
	if len(got) != 16 {
		t.Fatalf("Fingerprint = %q, want 16 hex digits", got)
	}
	if got == Fingerprint(secretB) {
		t.Fatal("different secrets share a fingerprint")
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "02_account.refreshed_balance.json")
	other := fixture(t, "01_account.created.json")
	ts := testNow.Add(-30 * time.Second)
	tsStr := fmt.Sprint(ts.Unix())
	sigA, sigB, sigX := v1(body, secretA, ts), v1(body, secretB, ts), v1(body, secretX, ts)

	tests := []struct {
		name    string
		secrets []string
		payload []byte
		header  string
		wantErr error // nil: accepted
		wantIs  error // a second error the result must wrap
		wantFP  string
	}{
		{name: "valid", secrets: []string{secretA}, header: sign(body, secretA, ts), wantFP: Fingerprint(secretA)},
		{name: "rotation: second secret matches", secrets: []string{secretA, secretB}, header: sign(body, secretB, ts), wantFP: Fingerprint(secretB)},
		{name: "rotation: first secret matches", secrets: []string{secretA, secretB}, header: sign(body, secretA, ts), wantFP: Fingerprint(secretA)},
		{name: "several v1, second matches", secrets: []string{secretB}, header: "t=" + tsStr + ",v1=" + sigA + ",v1=" + sigB, wantFP: Fingerprint(secretB)},
		{name: "several v1, none matches", secrets: []string{secretB}, header: "t=" + tsStr + ",v1=" + sigA + ",v1=" + sigX, wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNoValidSignature},
		{name: "v0 present", secrets: []string{secretA}, header: "t=" + tsStr + ",v1=" + sigA + ",v0=" + sigX, wantFP: Fingerprint(secretA)},
		{name: "only v0 carries the right signature", secrets: []string{secretA}, header: "t=" + tsStr + ",v0=" + sigA, wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNoValidSignature},
		{name: "upper-case hex", secrets: []string{secretA}, header: "t=" + tsStr + ",v1=" + strings.ToUpper(sigA), wantFP: Fingerprint(secretA)},
		{name: "spaces after commas", secrets: []string{secretA}, header: "t=" + tsStr + ", v1=" + sigX + ",  v1=" + sigA, wantFP: Fingerprint(secretA)},
		{name: "stale", secrets: []string{secretA}, header: sign(body, secretA, testNow.Add(-5*time.Minute-time.Second)), wantErr: ErrTimestampOutsideTolerance},
		{name: "just inside tolerance (past)", secrets: []string{secretA}, header: sign(body, secretA, testNow.Add(-5*time.Minute)), wantFP: Fingerprint(secretA)},
		{name: "future beyond tolerance", secrets: []string{secretA}, header: sign(body, secretA, testNow.Add(5*time.Minute+time.Second)), wantErr: ErrTimestampOutsideTolerance},
		{name: "just inside tolerance (future)", secrets: []string{secretA}, header: sign(body, secretA, testNow.Add(5*time.Minute)), wantFP: Fingerprint(secretA)},
		{name: "far future", secrets: []string{secretA}, header: sign(body, secretA, time.Unix(1<<40, 0)), wantErr: ErrTimestampOutsideTolerance},
		{name: "stale and wrong secret says signature", secrets: []string{secretA}, header: sign(body, secretX, testNow.Add(-time.Hour)), wantErr: ErrSignatureInvalid},
		{name: "missing header", secrets: []string{secretA}, header: "", wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNotSigned},
		{name: "garbled header", secrets: []string{secretA}, header: "garbage", wantErr: ErrSignatureInvalid, wantIs: webhook.ErrInvalidHeader},
		{name: "pair with two =", secrets: []string{secretA}, header: "t=" + tsStr + ",v1=" + sigA + "=", wantErr: ErrSignatureInvalid, wantIs: webhook.ErrInvalidHeader},
		{name: "trailing comma", secrets: []string{secretA}, header: "t=" + tsStr + ",v1=" + sigA + ",", wantErr: ErrSignatureInvalid, wantIs: webhook.ErrInvalidHeader},
		{name: "t not a number", secrets: []string{secretA}, header: "t=soon,v1=" + sigA, wantErr: ErrSignatureInvalid, wantIs: webhook.ErrInvalidHeader},
		{name: "no t", secrets: []string{secretA}, header: "v1=" + sigA, wantErr: ErrSignatureInvalid, wantIs: webhook.ErrInvalidHeader},
		{name: "no v1", secrets: []string{secretA}, header: "t=" + tsStr, wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNoValidSignature},
		{name: "v1 not hex", secrets: []string{secretA}, header: "t=" + tsStr + ",v1=zz" + sigA[2:], wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNoValidSignature},
		{name: "wrong secret", secrets: []string{secretA, secretB}, header: sign(body, secretX, ts), wantErr: ErrSignatureInvalid, wantIs: webhook.ErrNoValidSignature},
		{name: "signature of another body", secrets: []string{secretA}, header: sign(other, secretA, ts), wantErr: ErrSignatureInvalid},
		{name: "signature for another t", secrets: []string{secretA}, header: "t=" + fmt.Sprint(ts.Unix()+1) + ",v1=" + sigA, wantErr: ErrSignatureInvalid},
		{name: "body changed by one byte", secrets: []string{secretA}, payload: append(bytes.TrimSuffix(bytes.Clone(body), []byte("\n")), ' '), header: sign(body, secretA, ts), wantErr: ErrSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, tt.secrets...)
			payload := tt.payload
			if payload == nil {
				payload = body
			}
			got, err := v.Verify(payload, tt.header)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
				}
				for _, s := range append(tt.secrets, secretX) {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q reveals a secret", err)
					}
				}
				if got != (Verification{}) {
					t.Errorf("failed Verify returned %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.SecretFingerprint != tt.wantFP {
				t.Errorf("fingerprint = %s, want %s", got.SecretFingerprint, tt.wantFP)
			}
			// Only the signed part is kept: t and the
			// v1 value that matched, which re-verifies on its own.
			sig, ok := strings.CutPrefix(got.Header, "t="+fmt.Sprint(got.SignedAt)+",v1=")
			if !ok || len(sig) != 64 || !strings.Contains(strings.ToLower(tt.header), "v1="+sig) {
				t.Errorf("Header = %q, want t=%d and a v1 of %q", got.Header, got.SignedAt, tt.header)
			}
			if _, err := v.Reverify(payload, got.Header); err != nil {
				t.Errorf("Header %q does not re-verify: %v", got.Header, err)
			}
			if !strings.HasPrefix(strings.TrimLeft(tt.header, " "), "t="+fmt.Sprint(got.SignedAt)+",") {
				t.Errorf("SignedAt = %d, header %q", got.SignedAt, tt.header)
			}
		})
	}
}

// TestVerifyAgreesWithStripeGo checks that for well-formed headers our
// verdict on the signature is stripe-go's.
func TestVerifyAgreesWithStripeGo(t *testing.T) {
	v := newVerifier(t, secretA)
	for name, body := range allFixtures(t) {
		for _, secret := range []string{secretA, secretX} {
			for _, at := range []time.Time{testNow, testNow.Add(-time.Minute)} {
				h := sign(body, secret, at)
				_, ours := v.Verify(body, h)
				theirs := webhook.ValidatePayloadIgnoringTolerance(body, h, secretA)
				if (ours == nil) != (theirs == nil) {
					t.Errorf("%s signed with %s: ours %v, stripe-go %v", name, secret, ours, theirs)
				}
			}
		}
	}
}

// fakeAppender is a function-field fake of the event log.
type fakeAppender struct {
	mu     sync.Mutex
	calls  []appendCall
	append func(stream string, ev store.Event) (store.Appended, error)
}

type appendCall struct {
	stream   string
	expected store.ExpectedRevision
	events   []store.Event
}

func (f *fakeAppender) Append(ctx context.Context, stream string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error) {
	f.mu.Lock()
	f.calls = append(f.calls, appendCall{stream, expected, events})
	f.mu.Unlock()
	out := make([]store.Appended, 0, len(events))
	for i, ev := range events {
		res := store.Appended{ID: ev.ID, Stream: stream, Revision: uint64(i), Position: store.Position(100 + i)}
		if f.append != nil {
			var err error
			if res, err = f.append(stream, ev); err != nil {
				return nil, err
			}
		}
		out = append(out, res)
	}
	return out, nil
}

const customerCreated = `{
  "id": "evt_1OeZzz2eZvKYlo2CcUsTomer",
  "object": "event",
  "api_version": "2023-10-16",
  "created": 1705312700,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "email": "jenny@example.com"
    }
  },
  "livemode": true,
  "pending_webhooks": 2,
  "request": {"id": "req_1", "idempotency_key": null},
  "type": "customer.created"
}
`

func TestIngest(t *testing.T) {
	signedAt := testNow.Add(-10 * time.Second)
	received := testNow.Add(1234567 * time.Nanosecond) // truncated to 1.234567ms

	tests := []struct {
		name        string
		body        []byte
		header      func(body []byte) string
		append      func(stream string, ev store.Event) (store.Appended, error)
		wantErr     error
		wantStream  string
		wantConnect string
		wantAPI     string
		wantLive    bool
		wantDup     bool
		wantOutcome string
	}{
		{name: "created", body: fixture(t, "01_account.created.json"), wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantAPI: "2023-10-16", wantOutcome: OutcomeStored},
		{name: "disconnected", body: fixture(t, "07_account.disconnected.json"), wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantAPI: "2023-10-16", wantOutcome: OutcomeStored},
		{name: "rotated secret", body: fixture(t, "02_account.refreshed_balance.json"), header: func(b []byte) string { return sign(b, secretB, signedAt) }, wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantAPI: "2023-10-16", wantOutcome: OutcomeStored},
		{name: "other API version", body: fixture(t, "variants/api_version_2024-06-20.account.created.json"), wantStream: "fcaccount-fca_1OeYbZ2eZvKYlo2CpQ8dS1Gy", wantAPI: "2024-06-20", wantOutcome: OutcomeStored},
		{name: "newer fields", body: fixture(t, "variants/newer_fields.account.refreshed_balance.json"), wantStream: "fcaccount-fca_1OeYcZ2eZvKYlo2CfR2mV7Xw", wantAPI: "2023-10-16", wantOutcome: OutcomeStored},
		{name: "connect", body: fixture(t, "variants/connect_account.created.json"), wantStream: "fcaccount-fca_1OeYaZ2eZvKYlo2CmW5sJ9Dq", wantConnect: "acct_1OeWz12eZvKYlo2C", wantAPI: "2023-10-16", wantOutcome: OutcomeStored},
		{name: "customer.created", body: []byte(customerCreated), wantStream: "stripe-customer-cus_123", wantAPI: "2023-10-16", wantLive: true, wantOutcome: OutcomeStored},
		{name: "duplicate passes through", body: fixture(t, "03_account.refreshed_ownership.json"),
			append: func(stream string, ev store.Event) (store.Appended, error) {
				return store.Appended{ID: ev.ID, Stream: stream, Revision: 7, Position: 42, Duplicate: true}, nil
			}, wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantAPI: "2023-10-16", wantDup: true, wantOutcome: OutcomeDuplicate},
		{name: "store unavailable", body: fixture(t, "04_account.refreshed_transactions.json"),
			append: func(string, store.Event) (store.Appended, error) {
				return store.Appended{}, fmt.Errorf("sqlite: disk I/O: %w", store.ErrUnavailable)
			}, wantErr: store.ErrUnavailable, wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantOutcome: OutcomeStoreUnavailable},
		{name: "store refuses the size", body: fixture(t, "04_account.refreshed_transactions.json"),
			append: func(string, store.Event) (store.Appended, error) {
				return store.Appended{}, fmt.Errorf("eventstoredb: %w", store.ErrTooLarge)
			}, wantErr: store.ErrTooLarge, wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantOutcome: OutcomePayloadTooLarge},
		{name: "other store error", body: fixture(t, "04_account.refreshed_transactions.json"),
			append:  func(string, store.Event) (store.Appended, error) { return store.Appended{}, store.ErrClosed },
			wantErr: store.ErrClosed, wantStream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", wantOutcome: OutcomeError},
		{name: "wrong secret", body: fixture(t, "01_account.created.json"), header: func(b []byte) string { return sign(b, secretX, signedAt) }, wantErr: ErrSignatureInvalid, wantOutcome: OutcomeSignatureInvalid},
		{name: "missing header", body: fixture(t, "01_account.created.json"), header: func([]byte) string { return "" }, wantErr: ErrSignatureInvalid, wantOutcome: OutcomeSignatureInvalid},
		{name: "stale", body: fixture(t, "01_account.created.json"), header: func(b []byte) string { return sign(b, secretA, testNow.Add(-time.Hour)) }, wantErr: ErrTimestampOutsideTolerance, wantOutcome: OutcomeTimestampOutside},
		{name: "future", body: fixture(t, "01_account.created.json"), header: func(b []byte) string { return sign(b, secretA, testNow.Add(time.Hour)) }, wantErr: ErrTimestampOutsideTolerance, wantOutcome: OutcomeTimestampOutside},
		{name: "signed non-JSON", body: []byte("not json at all\n"), wantErr: ErrPayloadInvalid, wantOutcome: OutcomePayloadInvalid},
		{name: "signed non-event", body: []byte(`{"id":"cus_1","object":"customer","created":1}`), wantErr: ErrPayloadInvalid, wantOutcome: OutcomePayloadInvalid},
		{name: "signed event without data.object", body: []byte(`{"id":"evt_1","object":"event","type":"financial_connections.account.created","created":1,"data":{}}`), wantErr: ErrPayloadInvalid, wantOutcome: OutcomePayloadInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &fakeAppender{append: tt.append}
			var outcomes []Outcome
			svc := NewService(newVerifier(t, secretA, secretB), fa, ServiceOptions{
				Now:     func() time.Time { return received },
				Observe: func(o Outcome) { outcomes = append(outcomes, o) },
			})
			header := sign(tt.body, secretA, signedAt)
			if tt.header != nil {
				header = tt.header(tt.body)
			}
			got, err := svc.Ingest(context.Background(), tt.body, header)

			if len(outcomes) != 1 || outcomes[0].Result != tt.wantOutcome {
				t.Errorf("outcomes = %+v, want one %q", outcomes, tt.wantOutcome)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantStream == "" && len(fa.calls) != 0 {
					t.Fatalf("rejected event reached the store: %+v", fa.calls)
				}
				if got != (store.Appended{}) {
					t.Errorf("failed Ingest returned %+v", got)
				}
				for _, s := range []string{secretA, secretB, secretX} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q reveals a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Ingest: %v", err)
			}
			if len(fa.calls) != 1 || len(fa.calls[0].events) != 1 {
				t.Fatalf("appends = %+v, want one call with one event", fa.calls)
			}
			call := fa.calls[0]
			if call.stream != tt.wantStream || call.expected != store.AnyRevision {
				t.Errorf("append to %s expecting %s, want %s any", call.stream, call.expected, tt.wantStream)
			}
			env, _ := fc.ParseEnvelope(tt.body)
			ev := call.events[0]
			wantEv := store.Event{
				ID: env.ID, Type: env.Type, Data: tt.body,
				ReceivedAt: time.Date(2024, 1, 15, 10, 0, 0, 1234000, time.UTC),
				Created:    env.Created, Livemode: tt.wantLive, APIVersion: tt.wantAPI, ConnectAccount: tt.wantConnect,
				Source: store.SourceWebhook,
			}
			if !bytes.Equal(ev.Data, tt.body) || &ev.Data[0] != &tt.body[0] {
				t.Errorf("Data is not the request body itself")
			}
			if ev.ID == "" || !strings.HasPrefix(ev.ID, "evt_") || ev.Created == 0 {
				t.Errorf("event metadata missing: %+v", ev)
			}
			if ev.ID != wantEv.ID || ev.Type != wantEv.Type || !ev.ReceivedAt.Equal(wantEv.ReceivedAt) ||
				ev.ReceivedAt.Location() != time.UTC || ev.Created != wantEv.Created || ev.Livemode != wantEv.Livemode ||
				ev.APIVersion != wantEv.APIVersion || ev.ConnectAccount != wantEv.ConnectAccount || ev.Source != wantEv.Source {
				t.Errorf("event = %+v\nwant    %+v", ev, wantEv)
			}
			wantFP := Fingerprint(secretA)
			if tt.name == "rotated secret" {
				wantFP = Fingerprint(secretB)
			}
			wantProv := store.Provenance{SignatureHeader: header, SignedAt: signedAt.Unix(), SecretFingerprint: wantFP, VerifiedAt: wantEv.ReceivedAt}
			if ev.Provenance == nil || *ev.Provenance != wantProv {
				t.Errorf("provenance = %+v, want %+v", ev.Provenance, wantProv)
			}
			if got.ID != env.ID || got.Stream != tt.wantStream || got.Duplicate != tt.wantDup {
				t.Errorf("result = %+v", got)
			}
			if tt.wantDup && (got.Revision != 7 || got.Position != 42) {
				t.Errorf("duplicate lost its original coordinates: %+v", got)
			}
			if outcomes[0].EventType != env.Type {
				t.Errorf("outcome type = %q, want %q", outcomes[0].EventType, env.Type)
			}
		})
	}
}

func TestIngestConcurrent(t *testing.T) {
	fa := &fakeAppender{}
	svc := NewService(newVerifier(t, secretA, secretB), fa, ServiceOptions{Now: func() time.Time { return testNow }})
	bodies := allFixtures(t)
	var wg sync.WaitGroup
	for _, body := range bodies {
		for _, s := range []string{secretA, secretB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := svc.Ingest(context.Background(), body, sign(body, s, testNow)); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if len(fa.calls) != 2*len(bodies) {
		t.Errorf("%d appends, want %d", len(fa.calls), 2*len(bodies))
	}
}

// Only the signed parts of Stripe-Signature — t and the v1
// that matched — go into the stored provenance: v0, unknown keys, other v1
// values and padding are dropped. The stored header still re-verifies.
func TestProvenanceKeepsOnlySignedParts(t *testing.T) {
	fa := &fakeAppender{}
	v := newVerifier(t, secretA, secretB)
	svc := NewService(v, fa, ServiceOptions{Now: func() time.Time { return testNow }})
	body := fixture(t, "01_account.created.json")
	signedAt := testNow.Add(-time.Second)
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	good := v1(body, secretB, signedAt)
	header := "t=" + ts + ", v0=" + strings.Repeat("0", 64) + ",v1=" + v1(body, secretX, signedAt) +
		",x-pad=" + strings.Repeat("p", 60<<10) + ",\tv1=" + good + ",v1=nothex"
	if _, err := svc.Ingest(context.Background(), body, header); err != nil {
		t.Fatal(err)
	}
	p := fa.calls[0].events[0].Provenance
	want := "t=" + ts + ",v1=" + good
	if p == nil || p.SignatureHeader != want {
		t.Fatalf("stored signature header %.200q, want %q", p.SignatureHeader, want)
	}
	if ver, err := v.Reverify(body, p.SignatureHeader); err != nil || ver.SecretFingerprint != Fingerprint(secretB) {
		t.Fatalf("the stored header does not re-verify: %+v %v", ver, err)
	}
}

// SetSecrets swaps the set while requests are verified (serve's SIGHUP
// reload): every Verify sees the old set or the new one, and a bad set is
// refused without touching the one in use.
func TestSetSecretsConcurrent(t *testing.T) {
	v := newVerifier(t, secretA)
	body := fixture(t, "01_account.created.json")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				// Racing the swaps: the race detector is the check.
				_, _ = v.Verify(body, sign(body, secretB, testNow))
			}
		}()
	}
	for j := 0; j < 100; j++ {
		if err := v.SetSecrets([]string{secretB, secretA}); err != nil {
			t.Fatal(err)
		}
		if err := v.SetSecrets([]string{secretB}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := v.SetSecrets(nil); err == nil {
		t.Fatal("an empty set was accepted")
	}
	if err := v.SetSecrets([]string{secretA, ""}); err == nil || strings.Contains(err.Error(), secretA) {
		t.Fatalf("empty secret: %v", err)
	}
	if got := v.Fingerprints(); len(got) != 1 || got[0] != Fingerprint(secretB) {
		t.Fatalf("a refused set changed the secrets: %v", got)
	}
	if _, err := v.Verify(body, sign(body, secretA, testNow)); !errors.Is(err, ErrSignatureInvalid) {
		t.Fatalf("a removed secret still verifies: %v", err)
	}
}
