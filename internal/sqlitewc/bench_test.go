package sqlitewc

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGroupCommit commits transactions shaped like the event store's
// group commits — 15 rows of 3 KiB with a random unique key each, so every
// commit dirties ≈30 WAL frames plus index pages — with synchronous=FULL,
// through SQLite's default VFS and through this one. Compare the two
// commits/s and cpu-µs/commit figures of one run.
func BenchmarkGroupCommit(b *testing.B) {
	if _, err := Register(); err != nil {
		b.Fatal(err)
	}
	for _, vfs := range []string{"unix", VFSName} {
		b.Run(vfs, func(b *testing.B) {
			params := url.Values{"_pragma": {"journal_mode(WAL)", "synchronous(FULL)"}, "vfs": {vfs}}
			db, err := sql.Open("sqlite", dsn(filepath.Join(b.TempDir(), "bench.db"), params))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, body BLOB NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 3072)
			key := make([]byte, 16)
			b.ReportAllocs()
			b.SetBytes(15 * int64(len(body)))
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for j := 0; j < 15; j++ {
					rand.Read(key)
					if _, err := tx.Exec(`INSERT INTO t (k, body) VALUES (?, ?)`, fmt.Sprintf("%x", key), body); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/commit")
		})
	}
}
