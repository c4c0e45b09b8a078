package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// On a terminal every Draw returns to the start of the line and erases it,
// and Finish leaves the line empty.
func TestTerminalRedraws(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, true)
	l.Draw("1 events")
	l.Draw("2 events")
	l.Finish()
	want := "\r\033[K1 events\r\033[K2 events\r\033[K"
	if buf.String() != want {
		t.Errorf("output %q, want %q", buf.String(), want)
	}
	if strings.Contains(buf.String(), "\n") {
		t.Error("a terminal line must not scroll")
	}
}

// Anywhere else nothing is drawn: no carriage returns, no escapes.
func TestNotTerminalDrawsNothing(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, false)
	l.Draw("1 events")
	l.Tick(func() string { return "2 events" })
	l.Finish()
	if buf.Len() != 0 {
		t.Errorf("output %q, want none", buf.String())
	}
	var nilLine *Line
	nilLine.Draw("x")
	nilLine.Finish()
	if nilLine.TTY() {
		t.Error("nil line is a terminal")
	}
}

func TestFinishWithoutDrawWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, true).Finish()
	if buf.Len() != 0 {
		t.Errorf("output %q", buf.String())
	}
}

// Tick drops redraws closer together than Every; the first always draws.
func TestTickThrottles(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, true)
	l.Every = time.Hour
	calls := 0
	for range 3 {
		l.Tick(func() string { calls++; return "x" })
	}
	if calls != 1 || buf.String() != "\r\033[Kx" {
		t.Errorf("%d text calls, output %q", calls, buf.String())
	}
	l.Every = 0
	l.Tick(func() string { return "y" })
	if !strings.HasSuffix(buf.String(), "\r\033[Ky") {
		t.Errorf("output %q", buf.String())
	}
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		frac float64
		want string
	}{{0, "[    ]"}, {0.5, "[==  ]"}, {1, "[====]"}, {2, "[====]"}, {-1, "[    ]"}} {
		if got := Bar(c.frac, 4); got != c.want {
			t.Errorf("Bar(%v) = %q, want %q", c.frac, got, c.want)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&bytes.Buffer{}) {
		t.Error("a file or buffer is not a terminal")
	}
}
