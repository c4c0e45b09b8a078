// Package progress draws fcaudit's progress lines: one status line on a
// terminal, redrawn in place with a carriage return, cleared when the work
// is done. On anything but a terminal it draws nothing, so logs and pipes
// get only the commands' summaries.
//
// Every long command (replay, backfill, verify, projections rebuild) draws
// through a Line; whether the line is a terminal is decided once, by the
// caller, so tests force the terminal path with New(w, true). It is a few
// lines of stdlib rather than github.com/schollz/progressbar/v3, which
// would bring its own rendering, width detection and dependencies while
// each command already formats its own line.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// Line is one redrawn status line. A nil *Line and a Line that is not a
// terminal draw nothing. Its methods may be called from several goroutines.
type Line struct {
	w   io.Writer
	tty bool
	// Every throttles Tick: redraws closer together than this are dropped,
	// so a fast loop is not slowed by the terminal.
	Every time.Duration

	mu    sync.Mutex
	last  time.Time
	drawn bool
}

// New returns a line on w; tty says whether w is a terminal (IsTerminal,
// or forced by the caller).
func New(w io.Writer, tty bool) *Line {
	return &Line{w: w, tty: tty, Every: 200 * time.Millisecond}
}

// TTY reports whether the line is drawn at all.
func (l *Line) TTY() bool { return l != nil && l.tty }

// Draw redraws the line with text now.
func (l *Line) Draw(text string) {
	if !l.TTY() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drawLocked(text)
}

// Tick redraws the line with text() unless the last redraw was less than
// Every ago; text is not called when the redraw is dropped.
func (l *Line) Tick(text func() string) {
	if !l.TTY() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn && time.Since(l.last) < l.Every {
		return
	}
	l.drawLocked(text())
}

func (l *Line) drawLocked(text string) {
	l.last = time.Now()
	l.drawn = true
	fmt.Fprint(l.w, clearLine+text)
}

// Finish clears the line, if anything was drawn, so what follows starts on
// a clean line.
func (l *Line) Finish() {
	if !l.TTY() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn {
		fmt.Fprint(l.w, clearLine)
		l.drawn = false
	}
}

// Bar renders frac (0 to 1) as "[====      ]" of width cells.
func Bar(frac float64, width int) string {
	filled := int(min(max(frac, 0), 1) * float64(width))
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "]"
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
