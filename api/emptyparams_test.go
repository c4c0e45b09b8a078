package api_test

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestEmptyValueIsAbsent: openapi.yaml says an empty value (?limit=) is the
// same as leaving the parameter out (allowEmptyValue on every query
// parameter, TestRouteParamsDocumented). Every query parameter the document
// gives a route served here is sent empty; the answer must be the answer
// without it, byte for byte.
func TestEmptyValueIsAbsent(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := accountsServer(t)
	get := func(target string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	tried := 0
	for _, tmpl := range []string{"/v1/events", "/v1/accounts/{id}/events", "/v1/accounts", "/v1/accounts/{id}"} {
		item := doc.Paths.Value(tmpl)
		if item == nil || item.Get == nil {
			t.Fatalf("openapi.yaml has no GET %s", tmpl)
		}
		path := strings.ReplaceAll(tmpl, "{id}", account)
		wantCode, want := get(path)
		if wantCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, wantCode, want)
		}
		var names []string
		for _, p := range item.Get.Parameters {
			if p.Value.In == openapi3.ParameterInQuery {
				names = append(names, p.Value.Name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			code, got := get(path + "?" + name + "=")
			if code != wantCode || !bytes.Equal(got, want) {
				t.Errorf("GET %s?%s=: %d %.200s; without the parameter: %d %.200s", path, name, code, got, wantCode, want)
			}
			tried++
		}
	}
	if tried < 15 {
		t.Fatalf("only %d parameters tried", tried)
	}
}
