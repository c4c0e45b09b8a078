package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/fcaudit/fcaudit/fc"
)

// load is a set of concurrent senders posting signed FC events until
// stopped (or until the server stops answering), recording every id
// answered 200.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	acks   atomic.Int64

	mu       sync.Mutex
	acked    map[string]acked
	failures []string // unexpected answers (anything but 200 or a transport error)
}

// startLoad starts senders goroutines posting to baseURL. Events go to a
// pool of accounts so streams get several revisions each.
func startLoad(t testing.TB, baseURL string, senders int) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, acked: map[string]acked{}}
	accounts := make([]string, 32)
	for i := range accounts {
		accounts[i] = gen.NewAccountID()
	}
	types := fc.Types()
	c := newClient(senders)
	for range senders {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				ev := newEvent(types[rand.IntN(len(types))], accounts[rand.IntN(len(accounts))])
				code, a, err := postWebhook(ctx, c, baseURL, ev.body, testSecret)
				switch {
				case err != nil && code == 0:
					// No answer: the server is gone (killed, draining) or we
					// were stopped. Nothing was promised; stop once refused
					// so a dead server does not spin the loop.
					if ctx.Err() != nil || isRefused(err) {
						return
					}
				case code == http.StatusOK && a.ID == ev.id && !a.Duplicate:
					l.mu.Lock()
					l.acked[ev.id] = acked{stream: a.Stream, position: a.Position}
					l.mu.Unlock()
					l.acks.Add(1)
				default:
					l.mu.Lock()
					l.failures = append(l.failures, fmt.Sprintf("%s: status %d %+v %v", ev.id, code, a, err))
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// stop stops the senders and returns what was acknowledged and what failed.
func (l *load) stop() (map[string]acked, []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked, l.failures
}

// wait lets the senders run until the server stops answering them.
func (l *load) wait() (map[string]acked, []string) {
	l.wg.Wait()
	return l.stop()
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
