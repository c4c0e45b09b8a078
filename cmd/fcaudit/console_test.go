package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeConsole: serve mounts the console (GET / redirects to it, the dev
// token signs in, the session key is kept 0600 in the data dir) and
// --console=false leaves it out.
func TestServeConsole(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	dir := t.TempDir()
	base := startServe(t, dir, "--dev")
	resp, err := noRedirect.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	info, err := os.Stat(filepath.Join(dir, consoleKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v", consoleKeyFile, err, info.Mode())
	}
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = noRedirect.PostForm(base+"/console/signin", url.Values{"token": {dc.APIToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/accounts" ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("sign-in with the dev token: %d %s %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
	}

	off := startServe(t, t.TempDir(), "--dev", "--console=false")
	for _, p := range []string{"/", "/console/", "/console/signin"} {
		resp, err := noRedirect.Get(off + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("--console=false: GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestServeConsoleTrustProxy: behind a TLS-terminating proxy (--trust-proxy
// and X-Forwarded-Proto: https) the session cookie is Secure; without the
// flag the same header is not believed.
func TestServeConsoleTrustProxy(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, trust := range []bool{false, true} {
		dir := t.TempDir()
		args := []string{"--dev"}
		if trust {
			args = append(args, "--trust-proxy")
		}
		base := startServe(t, dir, args...)
		dc, err := loadDevConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/console/signin", strings.NewReader(url.Values{"token": {dc.APIToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cookie := resp.Header.Get("Set-Cookie")
		if resp.StatusCode != http.StatusSeeOther || cookie == "" {
			t.Fatalf("--trust-proxy=%v: sign-in %d %q", trust, resp.StatusCode, cookie)
		}
		if secure := strings.Contains(cookie, "Secure"); secure != trust {
			t.Errorf("--trust-proxy=%v: cookie %q: Secure %v", trust, cookie, secure)
		}
	}
}
