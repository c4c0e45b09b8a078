// Package sqlitewc registers a write-combining SQLite VFS for the
// connections that write fcaudit's SQLite files (the event store's writer
// and checkpointer, the read models' writer).
//
// SQLite writes each WAL frame with two pwrite calls (a 24-byte header,
// then the page), so a group commit of 15 webhooks — about 45 frames — made
// 90 system calls before its fsync, and in a profile of serve under load
// those pwrites were 9% of all CPU; the checkpointer's page copies were
// another 6%. On this machine's disk, 90 small sequential writes took 5 to
// 18 times as long as one write of the same bytes.
//
// The VFS is the "unix" VFS with one change: the WAL and main database files
// it opens buffer writes that continue exactly where the previous one ended,
// and write the run with one pwrite just before anything that could need it
// on disk. The buffer is flushed before every other file method (xSync,
// xRead, xFileSize, xTruncate, xLock, xUnlock, xFileControl, xShm*, xFetch,
// xClose), so:
//
//   - a commit is durable exactly as before: SQLite syncs the WAL in the
//     commit (synchronous=FULL), and the sync writes the buffer first;
//   - nothing another connection can see is missing from the file: in WAL
//     mode a commit becomes visible when the wal-index header is updated,
//     which with synchronous=FULL happens after that sync, and a checkpoint
//     publishes its progress (nBackfill) after syncing the database file;
//   - SQLite's own reads of frames it wrote in the same transaction (to
//     rewrite checksums) read the file after the flush.
//
// That argument needs synchronous=FULL (or NORMAL for checkpoint-only
// connections) and no memory-mapped I/O (mmap_size=0, the default), so
// only connections that are opened with those settings may use it.
// A write that fails while being flushed fails the method that flushed it
// with the write's own error code (SQLITE_FULL for a full disk), which fails
// the commit or checkpoint that needed it; SQLite rolls back as for any
// failed write.
package sqlitewc

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// VFSName is the name the VFS is registered under (the vfs= DSN parameter).
const VFSName = "fcaudit-wc"

// wcBufBytes bounds one buffered run; a longer run is written in pieces.
// It must stay under 128 KiB: the unix VFS's seekAndWriteFd masks every
// write's length with 0x1ffff (a 1 MiB write becomes a 0-byte one, which
// unixWrite reports as SQLITE_FULL).
const wcBufBytes = 124 << 10

var (
	wcOnce sync.Once
	wcName string // "" when registration failed: use the default VFS
	wcErr  error

	wcUnix    uintptr // the real unix VFS
	wcMethods uintptr // our sqlite3_io_methods, in C memory

	// wcFiles maps an open sqlite3_file (its C address) to its state. A
	// file is used by one connection at a time, so the state itself needs
	// no lock.
	wcFiles sync.Map

	// wcWrites and wcFlushes count xWrite calls and the pwrites they became
	// (tests check the combining happens).
	wcWrites, wcFlushes atomic.Int64
)

type wcFile struct {
	real  uintptr // the unix io_methods the file was opened with
	buf   uintptr // C memory, wcBufBytes
	n     int     // bytes buffered
	start int64   // file offset of buf[0]
}

// Register registers the VFS (once per process) and returns its name for
// the vfs= DSN parameter, or "" and the reason when it could not be set up;
// the default VFS is then the right fallback (slower, equally correct).
func Register() (string, error) {
	wcOnce.Do(func() { wcName, wcErr = registerWC() })
	return wcName, wcErr
}

// Counts reports how many writes SQLite made through the VFS and how many
// writes reached the file system, since the process started.
func Counts() (writes, flushes int64) { return wcWrites.Load(), wcFlushes.Load() }

// WithVFS adds vfs=NAME to a DSN's parameters when the VFS is registered.
// Use it only for connections that run with synchronous=FULL and without
// memory-mapped I/O (see the package comment).
func WithVFS(params url.Values) url.Values {
	if name, _ := Register(); name != "" {
		params.Set("vfs", name)
	}
	return params
}

func ptr(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

func registerWC() (string, error) {
	tls := libc.NewTLS()
	defer tls.Close()
	unixName, err := libc.CString("unix")
	if err != nil {
		return "", err
	}
	defer libc.Xfree(tls, unixName)
	wcUnix = sqlite3.Xsqlite3_vfs_find(tls, unixName)
	if wcUnix == 0 {
		return "", fmt.Errorf("sqlite: no unix VFS to wrap")
	}
	vfs := libc.Xcalloc(tls, 1, uint64(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	methods := libc.Xcalloc(tls, 1, uint64(unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})))
	name, err := libc.CString(VFSName)
	if vfs == 0 || methods == 0 || err != nil {
		return "", fmt.Errorf("sqlite: allocating the %s VFS: out of memory", VFSName)
	}
	v := (*sqlite3.Tsqlite3_vfs)(ptr(vfs))
	*v = *(*sqlite3.Tsqlite3_vfs)(ptr(wcUnix))
	v.FpNext = 0
	v.FzName = name
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&v.FxOpen)) = wcOpen

	m := (*sqlite3.Tsqlite3_io_methods)(ptr(methods))
	m.FiVersion = 3
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&m.FxClose)) = wcClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&m.FxRead)) = wcRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&m.FxWrite)) = wcWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&m.FxTruncate)) = wcTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m.FxSync)) = wcSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&m.FxFileSize)) = wcFileSize
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m.FxLock)) = wcLock
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m.FxUnlock)) = wcUnlock
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&m.FxCheckReservedLock)) = wcCheckReservedLock
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&m.FxFileControl)) = wcFileControl
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&m.FxSectorSize)) = wcSectorSize
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&m.FxDeviceCharacteristics)) = wcDeviceCharacteristics
	*(*func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32)(unsafe.Pointer(&m.FxShmMap)) = wcShmMap
	*(*func(*libc.TLS, uintptr, int32, int32, int32) int32)(unsafe.Pointer(&m.FxShmLock)) = wcShmLock
	*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&m.FxShmBarrier)) = wcShmBarrier
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m.FxShmUnmap)) = wcShmUnmap
	*(*func(*libc.TLS, uintptr, int64, int32, uintptr) int32)(unsafe.Pointer(&m.FxFetch)) = wcFetch
	*(*func(*libc.TLS, uintptr, int64, uintptr) int32)(unsafe.Pointer(&m.FxUnfetch)) = wcUnfetch
	wcMethods = methods

	if rc := sqlite3.Xsqlite3_vfs_register(tls, vfs, 0); rc != sqlite3.SQLITE_OK {
		return "", fmt.Errorf("sqlite: registering the %s VFS: code %d", VFSName, rc)
	}
	return VFSName, nil
}

// wcOpen opens the file with the unix VFS; WAL and main database files then
// get the combining methods.
func wcOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	unix := (*sqlite3.Tsqlite3_vfs)(ptr(wcUnix))
	rc := (*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&unix.FxOpen)))(tls, wcUnix, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&(sqlite3.SQLITE_OPEN_WAL|sqlite3.SQLITE_OPEN_MAIN_DB) == 0 {
		return rc
	}
	f := (*sqlite3.Tsqlite3_file)(ptr(pFile))
	if f.FpMethods == 0 || (*sqlite3.Tsqlite3_io_methods)(ptr(f.FpMethods)).FiVersion < 3 {
		return rc
	}
	buf := libc.Xmalloc(tls, wcBufBytes)
	if buf == 0 {
		// Unbuffered is still correct.
		return rc
	}
	wcFiles.Store(pFile, &wcFile{real: f.FpMethods, buf: buf})
	f.FpMethods = wcMethods
	return rc
}

func wcState(pFile uintptr) *wcFile {
	v, _ := wcFiles.Load(pFile)
	return v.(*wcFile)
}

func (f *wcFile) methods() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(ptr(f.real))
}

// flush writes the buffered run, if any. A run that fails to write stays
// buffered, so the next flush (at the latest the next xSync) retries it
// and reports the failure again: the file sees the writes in the order
// SQLite made them, and no sync succeeds over a write that did not.
func (f *wcFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	rc := f.write(tls, pFile, f.buf, int32(f.n), f.start)
	if rc == sqlite3.SQLITE_OK {
		f.n = 0
	}
	return rc
}

// write is the unix VFS's xWrite: one write that reaches the file.
func (f *wcFile) write(tls *libc.TLS, pFile, buf uintptr, n int32, off int64) int32 {
	wcFlushes.Add(1)
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&f.methods().FxWrite)))(tls, pFile, buf, n, off)
}

// flushed returns pFile's state after writing its buffered run; every file
// method but xWrite, xSectorSize and xDeviceCharacteristics starts with it.
func flushed(tls *libc.TLS, pFile uintptr) (*wcFile, int32) {
	f := wcState(pFile)
	return f, f.flush(tls, pFile)
}

func wcWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := wcState(pFile)
	wcWrites.Add(1)
	amt := int(iAmt)
	if f.n > 0 && (iOfst != f.start+int64(f.n) || f.n+amt > wcBufBytes) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if amt > wcBufBytes {
		return f.write(tls, pFile, zBuf, iAmt, iOfst)
	}
	if f.n == 0 {
		f.start = iOfst
	}
	copy(unsafe.Slice((*byte)(ptr(f.buf+uintptr(f.n))), amt), unsafe.Slice((*byte)(ptr(zBuf)), amt))
	f.n += amt
	return sqlite3.SQLITE_OK
}

// wcClose writes what is buffered before closing; a run that cannot be
// written is dropped with the file (SQLite syncs before it relies on any
// write, so it only ever held frames of a transaction that did not commit).
func wcClose(tls *libc.TLS, pFile uintptr) int32 {
	f, frc := flushed(tls, pFile)
	rc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&f.methods().FxClose)))(tls, pFile)
	wcFiles.Delete(pFile)
	libc.Xfree(tls, f.buf)
	if frc != sqlite3.SQLITE_OK {
		return frc
	}
	return rc
}

func wcRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&f.methods().FxRead)))(tls, pFile, zBuf, iAmt, iOfst)
}

func wcTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&f.methods().FxTruncate)))(tls, pFile, size)
}

func wcSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&f.methods().FxSync)))(tls, pFile, flags)
}

func wcFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&f.methods().FxFileSize)))(tls, pFile, pSize)
}

func wcLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&f.methods().FxLock)))(tls, pFile, lock)
}

func wcUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&f.methods().FxUnlock)))(tls, pFile, lock)
}

func wcCheckReservedLock(tls *libc.TLS, pFile, pResOut uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&f.methods().FxCheckReservedLock)))(tls, pFile, pResOut)
}

func wcFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&f.methods().FxFileControl)))(tls, pFile, op, pArg)
}

func wcSectorSize(tls *libc.TLS, pFile uintptr) int32 {
	f := wcState(pFile)
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&f.methods().FxSectorSize)))(tls, pFile)
}

func wcDeviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	f := wcState(pFile)
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&f.methods().FxDeviceCharacteristics)))(tls, pFile)
}

func wcShmMap(tls *libc.TLS, pFile uintptr, iPage, pgsz, bExtend int32, pp uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32)(unsafe.Pointer(&f.methods().FxShmMap)))(tls, pFile, iPage, pgsz, bExtend, pp)
}

func wcShmLock(tls *libc.TLS, pFile uintptr, offset, n, flags int32) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32, int32, int32) int32)(unsafe.Pointer(&f.methods().FxShmLock)))(tls, pFile, offset, n, flags)
}

// wcShmBarrier cannot report a failed flush; the run stays buffered and
// the sync that follows every commit and checkpoint retries and reports it.
func wcShmBarrier(tls *libc.TLS, pFile uintptr) {
	f, _ := flushed(tls, pFile)
	(*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&f.methods().FxShmBarrier)))(tls, pFile)
}

func wcShmUnmap(tls *libc.TLS, pFile uintptr, deleteFlag int32) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&f.methods().FxShmUnmap)))(tls, pFile, deleteFlag)
}

func wcFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int64, int32, uintptr) int32)(unsafe.Pointer(&f.methods().FxFetch)))(tls, pFile, iOfst, iAmt, pp)
}

func wcUnfetch(tls *libc.TLS, pFile uintptr, iOfst int64, p uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int64, uintptr) int32)(unsafe.Pointer(&f.methods().FxUnfetch)))(tls, pFile, iOfst, p)
}
