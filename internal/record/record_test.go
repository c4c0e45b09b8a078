package record

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

func TestFrom(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name, stream, connect string
		data                  []byte
		wantAccount           any
		wantConnect           any
		wantPayload           string
	}{
		{"account stream", "fcaccount-fca_1", "", []byte(`{"a": "<b>&"}`), "fca_1", nil, `{"a":"<b>&"}`},
		{"other object", "stripe-customer-cus_1", "acct_9", []byte(`{}`), nil, "acct_9", `{}`},
		{"not JSON (imported data)", "fcaccount-fca_2", "", []byte("not json"), "fca_2", nil, `"not json"`},
	}
	for _, tt := range tests {
		e := store.RecordedEvent{Event: store.Event{ID: "evt_1", Type: "t", Data: tt.data, ReceivedAt: at,
			ConnectAccount: tt.connect, Source: store.SourceWebhook}, Stream: tt.stream, Revision: 2, Position: 9}
		e.BodySHA256[0] = 0xab
		var buf bytes.Buffer
		if err := NewEncoder(&buf).Encode(From(&e)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%s: output is not JSON: %s", tt.name, buf.Bytes())
		}
		if m["account"] != tt.wantAccount || m["connect_account"] != tt.wantConnect {
			t.Errorf("%s: account %v connect %v", tt.name, m["account"], m["connect_account"])
		}
		if m["received_at"] != "2026-11-26T10:00:00.123456Z" || m["position"] != float64(9) ||
			!strings.HasPrefix(m["body_sha256"].(string), "ab") || len(m["chain_hash"].(string)) != 64 {
			t.Errorf("%s: %v", tt.name, m)
		}
		if !strings.Contains(buf.String(), `"payload":`+tt.wantPayload+"}") {
			t.Errorf("%s: payload not %s in %s", tt.name, tt.wantPayload, buf.String())
		}
		if strings.Count(buf.String(), "\n") != 1 {
			t.Errorf("%s: not one line: %q", tt.name, buf.String())
		}
	}
}
