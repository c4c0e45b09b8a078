package sqlitewc

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"
)

func dsn(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: params.Encode()}
	return u.String()
}

// open returns a one-connection writer through the VFS and a reader on
// the default VFS, as the event store opens them.
func open(t *testing.T) (w, r *sql.DB, path string) {
	t.Helper()
	if _, err := Register(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "wc.db")
	params := WithVFS(url.Values{"_pragma": {"busy_timeout(5000)", "journal_mode(WAL)", "synchronous(FULL)", "wal_autocheckpoint(0)"}})
	if params.Get("vfs") != VFSName {
		t.Fatalf("WithVFS did not add the VFS: %v", params)
	}
	w, err := sql.Open("sqlite", dsn(path, params))
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	t.Cleanup(func() { w.Close() })
	if _, err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	r, err = sql.Open("sqlite", dsn(path, url.Values{"mode": {"ro"}, "_pragma": {"busy_timeout(5000)"}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r, path
}

func insertRows(t *testing.T, w *sql.DB, n, size int) (sum [32]byte, err error) {
	t.Helper()
	tx, err := w.Begin()
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	for i := 0; i < n; i++ {
		body := make([]byte, size)
		rand.Read(body)
		h.Write(body)
		if _, err := tx.Exec(`INSERT INTO t (body) VALUES (?)`, body); err != nil {
			tx.Rollback()
			return sum, err
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, tx.Commit()
}

func readSum(t *testing.T, db *sql.DB) (n int, sum [32]byte) {
	t.Helper()
	rows, err := db.Query(`SELECT body FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		h.Write(b)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	copy(sum[:], h.Sum(nil))
	return n, sum
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

// A transaction much larger than one buffered run (and than the 128 KiB a
// single unix-VFS write may carry) commits whole, with far fewer writes
// reaching the file than SQLite made, and reads back byte for byte from
// another connection on the default VFS, before and after a checkpoint.
func TestLargeTransactionIsCombinedAndReadBack(t *testing.T) {
	w, r, path := open(t)
	writes0, flushes0 := Counts()
	want, err := insertRows(t, w, 600, 3000) // ≈ 1.8 MB, 600+ WAL frames
	if err != nil {
		t.Fatal(err)
	}
	writes, flushes := Counts()
	writes, flushes = writes-writes0, flushes-flushes0
	if writes < 1200 {
		t.Fatalf("%d writes went through the VFS for 600 3,000-byte rows; want ≥ 1,200 (is the writer using it?)", writes)
	}
	if flushes*10 > writes {
		t.Fatalf("%d of %d writes reached the file; want under a tenth", flushes, writes)
	}
	if n, got := readSum(t, r); n != 600 || got != want {
		t.Fatalf("reader saw %d rows (want 600), content match %v", n, got == want)
	}
	if _, err := w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after TRUNCATE checkpoint: %v, %v", fi, err)
	}
	if n, got := readSum(t, r); n != 600 || got != want {
		t.Fatalf("after checkpoint the reader saw %d rows (want 600), content match %v", n, got == want)
	}
	integrityOK(t, path)
}

// Every commit is visible to another connection the moment Commit returns:
// nothing it wrote may still sit in a buffer.
func TestCommitVisibleAtOnce(t *testing.T) {
	w, r, path := open(t)
	for i := 1; i <= 200; i++ {
		if _, err := w.Exec(`INSERT INTO t (body) VALUES (?)`, bytes.Repeat([]byte{byte(i)}, 5000)); err != nil {
			t.Fatal(err)
		}
		var n int
		var last []byte
		if err := r.QueryRow(`SELECT count(*), (SELECT body FROM t ORDER BY id DESC LIMIT 1) FROM t`).Scan(&n, &last); err != nil {
			t.Fatal(err)
		}
		if n != i || len(last) != 5000 || last[4999] != byte(i) {
			t.Fatalf("after commit %d the reader saw %d rows, last row %d bytes", i, n, len(last))
		}
		if i%50 == 0 {
			if _, err := w.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				t.Fatal(err)
			}
		}
	}
	integrityOK(t, path)
}

// A write that fails when the buffer is flushed fails the commit, which is
// then absent; once writes succeed again the next commit lands and the file
// is intact. The failure is made with RLIMIT_FSIZE, which fails writes
// beyond a size with EFBIG.
func TestFailedFlushFailsCommit(t *testing.T) {
	w, r, path := open(t)
	before, err := insertRows(t, w, 10, 3000)
	if err != nil {
		t.Fatal(err)
	}
	wal, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}

	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(wal.Size()) + 64<<10 // the big commit needs ~300 KB more
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	_, failed := insertRows(t, w, 100, 3000)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if failed == nil {
		t.Fatal("a commit whose WAL writes could not all be written succeeded")
	}
	t.Logf("commit failed as it should: %v", failed)
	if n, got := readSum(t, r); n != 10 || got != before {
		t.Fatalf("after the failed commit the reader saw %d rows (want the 10 committed), content match %v", n, got == before)
	}

	if _, err := insertRows(t, w, 100, 3000); err != nil {
		t.Fatalf("commit after writes succeed again: %v", err)
	}
	if n, _ := readSum(t, r); n != 110 {
		t.Fatalf("reader saw %d rows, want 110", n)
	}
	integrityOK(t, path)
}
