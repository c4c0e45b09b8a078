package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/progress"
)

// The bar redraws in place at most every 200ms of the run's clock and is
// cleared by Finish; off a terminal it draws nothing.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	b := NewProgressBar(progress.New(&buf, true), 0, 100, 0)
	b.Update(Progress{Done: 10, Position: 10, Elapsed: time.Second})
	b.Update(Progress{Done: 11, Position: 11, Elapsed: time.Second + 100*time.Millisecond}) // dropped
	b.Update(Progress{Done: 50, Position: 50, Elapsed: 2 * time.Second})
	b.Finish()
	want := "\r\033[K[==                      ]  10%  10 events  10/s  ETA 9s" +
		"\r\033[K[============            ]  50%  50 events  25/s  ETA 2s\r\033[K"
	if buf.String() != want {
		t.Errorf("got  %q\nwant %q", buf.String(), want)
	}

	buf.Reset()
	b = NewProgressBar(progress.New(&buf, false), 0, 100, 0)
	b.Update(Progress{Done: 10, Position: 10, Elapsed: time.Second})
	b.Finish()
	if strings.ContainsAny(buf.String(), "\r\033") || buf.Len() != 0 {
		t.Errorf("not a terminal: %q", buf.String())
	}
}
