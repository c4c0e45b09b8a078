package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// The README quickstart's sequence: trigger, then at once
// GET /v1/accounts/{id} against a real serve. It answered 404 for about the
// projection's batch window after the webhook's 200; the account's own
// status now reflects every acknowledged event.
func TestQuickstartReadsItsWrites(t *testing.T) {
	dir := t.TempDir()
	base := startServe(t, dir, "--dev")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []string{"created", "refreshed_balance", "deactivated"} {
		if code, out, errOut := runCmd(t, context.Background(), "trigger", typ, "--data-dir", dir, "--account", "fca_quick1"); code != 0 {
			t.Fatalf("trigger %s: %d %s %s", typ, code, out, errOut)
		}
		req, _ := http.NewRequest("GET", base+"/v1/accounts/fca_quick1", nil)
		req.Header.Set("Authorization", "Bearer "+dc.APIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var st struct {
			EventsCount int `json:"events_count"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &st) != nil || st.EventsCount != i+1 {
			t.Fatalf("GET right after trigger %s: %d %s; want 200 with events_count %d", typ, resp.StatusCode, body, i+1)
		}
	}
}
