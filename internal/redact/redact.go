// Package redact is fcaudit's one way of showing a URL without the secrets
// it may carry: every message, log record, audit record and help text that
// shows a URL (a replay target, an EventStoreDB connection string, a
// backfill API base) passes it through URL first.
//
// It imports the standard library only.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Placeholder replaces every query value.
const Placeholder = "REDACTED"

// URL returns u without credentials: the userinfo (user:password@) removed,
// every query value replaced by Placeholder (tokens often travel there) and
// the fragment dropped. A string url.Parse rejects — an EventStoreDB
// connection string with several gossip seeds, a typo — is cut the same way
// by hand: whatever precedes the last '@' of the authority goes, and so does
// everything from the first '?' or '#'.
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Opaque != "" {
		// "user:pw@host" parses as scheme "user" with opaque "pw@host".
		return byHand(u)
	}
	p.User = nil
	p.Fragment, p.RawFragment = "", ""
	if p.RawQuery != "" {
		q, err := url.ParseQuery(p.RawQuery)
		if err != nil {
			p.RawQuery = Placeholder
		} else {
			for k := range q {
				q[k] = []string{Placeholder}
			}
			p.RawQuery = q.Encode()
		}
	}
	p.ForceQuery = false
	return p.String()
}

// byHand redacts a string url.Parse could not read.
func byHand(u string) string {
	rest, query := u, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
		if u[i] == '?' {
			query = "?" + Placeholder
		}
	}
	scheme, auth, hasScheme := strings.Cut(rest, "://")
	if !hasScheme {
		scheme, auth = "", rest
	}
	path := ""
	if i := strings.IndexByte(auth, '/'); i >= 0 {
		auth, path = auth[:i], auth[i:]
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	if hasScheme {
		return scheme + "://" + auth + path + query
	}
	return auth + path + query
}

// URLError rewrites, in place, the URL of every *url.Error in err's chain
// (net/http's and url.Parse's errors quote the whole URL) to its redacted
// form, and returns err. Call it on the error as the library returned it,
// before wrapping it: fmt.Errorf renders its message when it is called, so a
// wrapper made earlier keeps the URL.
func URLError(err error) error {
	for e := err; e != nil; {
		var ue *url.Error
		if !errors.As(e, &ue) {
			break
		}
		ue.URL = URL(ue.URL)
		e = ue.Err
	}
	return err
}
