package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// secretEnv is every environment variable that holds a secret, with a value
// the tests look for in output.
var secretEnv = map[string]string{
	"STRIPE_WEBHOOK_SECRET":         "whsec_env_leak_1a2b",
	"FCAUDIT_API_TOKENS":            "tok_env_leak_3c4d",
	"FCAUDIT_REPLAY_SIGNING_SECRET": "whsec_env_replay_leak_5e6f",
	"FCAUDIT_EVENTSTORE":            "esdb://admin:pw_env_leak_7a8b@127.0.0.1:2113?tls=false",
}

func setSecretEnv(t *testing.T) {
	for k, v := range secretEnv {
		t.Setenv(k, v)
	}
}

func leaks(s string) []string {
	var found []string
	for _, secret := range []string{"whsec_env_leak_1a2b", "tok_env_leak_3c4d", "whsec_env_replay_leak_5e6f", "pw_env_leak_7a8b"} {
		if strings.Contains(s, secret) {
			found = append(found, secret)
		}
	}
	return found
}

// Issue 16 item 7: --help of every command shows where a secret comes
// from, never the secret itself.
func TestHelpHidesSecretsFromEnv(t *testing.T) {
	setSecretEnv(t)
	var names [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			names = append(names, p)
			walk(sub, p)
		}
	}
	walk(NewRootCommand(nil, io.Discard, io.Discard), nil)
	var all strings.Builder
	for _, p := range names {
		code, out, errOut := runCmd(t, context.Background(), append(p, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d", p, code)
		}
		if l := leaks(out + errOut); len(l) > 0 {
			t.Errorf("%v --help shows %v:\n%s", p, l, out)
		}
		all.WriteString(out)
	}
	for _, want := range []string{"(set from $STRIPE_WEBHOOK_SECRET)", "(set from $FCAUDIT_API_TOKENS)",
		"(set from $FCAUDIT_REPLAY_SIGNING_SECRET)", "(set from $FCAUDIT_EVENTSTORE)"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no command's --help says %q", want)
		}
	}
}

// An EventStoreDB connection string the client cannot parse is reported
// without its credentials.
func TestEventStoreErrorHidesCredentials(t *testing.T) {
	for _, conn := range []string{
		"esdb://admin:pw_env_leak_7a8b@127.0.0.1:notaport",
		"esdb://admin:pw_env_leak_7a8b@h1:1,h2:x",
		"mongodb://admin:pw_env_leak_7a8b@127.0.0.1:2113",
	} {
		code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", t.TempDir(), "--eventstore", conn)
		if code == 0 {
			t.Errorf("%s: exit 0", conn)
		}
		if l := leaks(out + errOut); len(l) > 0 {
			t.Errorf("%s: output shows %v:\n%s%s", conn, l, out, errOut)
		}
	}
}
