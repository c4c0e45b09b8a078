package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@example.com/hook?token=abc&x=1#frag": "https://example.com/hook?token=REDACTED&x=REDACTED",
		"http://localhost:3000/webhooks":                      "http://localhost:3000/webhooks",
		"esdb://admin:changeit@127.0.0.1:2113?tls=false":      "esdb://127.0.0.1:2113?tls=REDACTED",
		// url.Parse rejects these: redacted by hand.
		"esdb://admin:changeit@h1:2113,h2:2113?tls=false":   "esdb://h1:2113,h2:2113?tls=REDACTED",
		"esdb://admin:change@it@host:notaport/x?tok=s3cr#f": "esdb://host:notaport/x?REDACTED",
		"admin:pw@host:bad?token=s3cr":                      "host:bad?REDACTED",
		"http://h/?%zz=s3cr&token=s3cr":                     "http://h/?REDACTED",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"pw", "changeit", "s3cr", "abc"} {
			if strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q still holds %q", in, got, secret)
			}
		}
	}
}

func TestURLError(t *testing.T) {
	_, err := url.Parse("esdb://admin:s3cret@host:bad")
	if err == nil || !strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("url.Parse error %v: the test needs one that quotes the URL", err)
	}
	wrapped := fmt.Errorf("open: %w", URLError(err))
	if got := wrapped.Error(); strings.Contains(got, "s3cret") {
		t.Errorf("URLError left the secret: %s", got)
	}
	var ue *url.Error
	if !errors.As(wrapped, &ue) {
		t.Error("the error chain lost its *url.Error")
	}
	if URLError(nil) != nil {
		t.Error("URLError(nil) != nil")
	}
}
