package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
)

// devConfigFile is where `serve --dev` keeps its generated credentials so
// `fcaudit trigger` (and a restart) find them.
const devConfigFile = "dev.json"

// devConfig is the content of DATA_DIR/dev.json.
type devConfig struct {
	WebhookSecret string `json:"webhook_secret"`
	APIToken      string `json:"api_token"`
	URL           string `json:"url"`
}

func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the OS has no entropy: nothing sane to do
	}
	return prefix + hex.EncodeToString(b)
}

// loadDevConfig reads DATA_DIR/dev.json (fs.ErrNotExist when absent).
func loadDevConfig(dataDir string) (devConfig, error) {
	var c devConfig
	b, err := os.ReadFile(filepath.Join(dataDir, devConfigFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", filepath.Join(dataDir, devConfigFile), err)
	}
	return c, nil
}

// ensureDevConfig reuses an existing dev.json (so restarts keep the same
// secret and trigger keeps working) or creates one with fresh credentials,
// mode 0600, written atomically. The URL is left as it is: claimDevURL sets
// it once the server has bound its port.
func ensureDevConfig(dataDir string) (devConfig, bool, error) {
	c, err := loadDevConfig(dataDir)
	if err == nil && c.WebhookSecret != "" && c.APIToken != "" {
		return c, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return c, false, err
	}
	c = devConfig{WebhookSecret: randomToken("whsec_dev_", 24), APIToken: randomToken("fca_dev_", 24)}
	return c, true, writeDevConfig(dataDir, c)
}

// claimDevURL records url (the webhook URL of the address actually bound,
// so --listen 127.0.0.1:0 works) in dev.json, unless another dev server on
// the same data directory already recorded its own URL and still answers
// /healthz: the first server keeps the record, so a second `serve --dev`
// on another port never sends trigger's events away from it. A record whose
// server is gone is stale and is replaced. It reports the URL dev.json
// holds afterwards.
func claimDevURL(ctx context.Context, dataDir, url string) (string, error) {
	c, err := loadDevConfig(dataDir)
	if err != nil {
		return "", err
	}
	if c.URL == url {
		return url, nil
	}
	if c.URL != "" && devServerAlive(ctx, c.URL) {
		return c.URL, nil
	}
	c.URL = url
	return url, writeDevConfig(dataDir, c)
}

// devServerAlive asks the fcaudit behind webhookURL for /healthz, briefly.
func devServerAlive(ctx context.Context, webhookURL string) bool {
	u, err := neturl.Parse(webhookURL)
	if err != nil || u.Host == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Scheme+"://"+u.Host+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func writeDevConfig(dataDir string, c devConfig) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dataDir, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, devConfigFile)
	if err := atomicfile.WriteFile(path, append(b, '\n'), atomicfile.FileMode, atomicfile.Replace); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// webhookTarget fills in a webhook URL and signing secret the user did not
// give: the secret from STRIPE_WEBHOOK_SECRET (or the first secret of
// STRIPE_WEBHOOK_SECRET_FILE), else both from the dev server's
// DATA_DIR/dev.json (trigger and loadgen share these defaults).
func webhookTarget(dataDir string, url, secret *string) error {
	if *secret == "" {
		// The same precedence as serve's secretSource: a value and a
		// file in the environment at once is a mistake, not a choice.
		if os.Getenv("STRIPE_WEBHOOK_SECRET") != "" && os.Getenv("STRIPE_WEBHOOK_SECRET_FILE") != "" {
			return &usageError{errors.New("STRIPE_WEBHOOK_SECRET and STRIPE_WEBHOOK_SECRET_FILE are both set: pick one")}
		}
		if s := envList("STRIPE_WEBHOOK_SECRET"); len(s) > 0 {
			*secret = s[0]
		} else if file := os.Getenv("STRIPE_WEBHOOK_SECRET_FILE"); file != "" {
			s, err := (&secretSource{name: "secret", list: true}).read(file)
			if err != nil {
				return fmt.Errorf("STRIPE_WEBHOOK_SECRET_FILE: %w", err)
			}
			*secret = s[0]
		}
	}
	if *url != "" && *secret != "" {
		return nil
	}
	dc, err := loadDevConfig(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return &usageError{fmt.Errorf("no --url/--secret given and no %s/%s: start 'fcaudit serve --dev' first or pass --url and --secret", dataDir, devConfigFile)}
	} else if err != nil {
		return err
	}
	if *url == "" {
		*url = dc.URL
	}
	if *secret == "" {
		*secret = dc.WebhookSecret
	}
	return nil
}
