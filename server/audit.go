package server

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/costor/costor/server/api"
)

// auditFlushInterval bounds how long an allowed request's audit entry may
// sit in memory: entries are group-committed so that a restore's thousands
// of blob reads do not each wait for an fsync. Refused requests are synced
// at once, since they are what an investigation looks for first.
const auditFlushInterval = 100 * time.Millisecond

// Entry fields are capped so that one line always fits the tail read of
// openAudit.
const (
	maxAuditField = 1024
	auditTailRead = 64 << 10
)

// auditLog appends HMAC-chained entries to audit.log. Each entry's Hash is
// HMAC-SHA256(audit key, Prev || canonical JSON of the entry with an empty
// Hash), and Prev is the previous entry's Hash ("" for the first): an
// edited, removed or inserted line breaks the chain at that line, and
// nobody without server.key can forge a consistent chain.
type auditLog struct {
	path   string
	key    []byte
	logger *slog.Logger

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	seq    uint64
	prev   string
	dirty  bool
	failed bool // a write error was logged; logged again only after a success

	stop chan struct{}
	done chan struct{}
}

func auditHash(key []byte, e *api.AuditEntry) (string, error) {
	c := *e
	c.Hash = ""
	canon, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(e.Prev))
	mac.Write(canon)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// parseAuditLine decodes one line of audit.log (without its newline).
func parseAuditLine(line []byte) (api.AuditEntry, error) {
	var e api.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("malformed audit entry: %w", err)
	}
	if dec.More() {
		return e, errors.New("malformed audit entry: data after the JSON object")
	}
	if e.Seq == 0 {
		return e, errors.New("malformed audit entry: seq 0")
	}
	return e, nil
}

// openAudit opens audit.log for appending, continuing the chain from its
// last entry. A torn last line (a crash mid-write) is cut off; any other
// unreadable last line is refused, since continuing would hide it.
func openAudit(path string, key []byte, logger *slog.Logger) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a := &auditLog{path: path, key: key, logger: logger, f: f, stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.resume(); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a.w = bufio.NewWriterSize(f, 64<<10)
	go a.flusher()
	return a, nil
}

func (a *auditLog) resume() error {
	fi, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	start := max(0, size-auditTailRead)
	tail := make([]byte, size-start)
	if _, err := a.f.ReadAt(tail, start); err != nil {
		return fmt.Errorf("read audit log %s: %w", a.path, err)
	}
	if tail[len(tail)-1] != '\n' {
		cut := bytes.LastIndexByte(tail, '\n') + 1 // 0 when no full line is in the tail
		if cut == 0 && start > 0 {
			return fmt.Errorf("audit log %s ends in a line longer than %d bytes: it was not written by costor; move it aside to start a new log", a.path, auditTailRead)
		}
		a.logger.Warn("audit log ended inside an entry (a crash while writing); cutting the torn entry off",
			"path", a.path, "bytes", len(tail)-cut)
		if err := a.f.Truncate(start + int64(cut)); err != nil {
			return fmt.Errorf("truncate torn audit log %s: %w", a.path, err)
		}
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("truncate torn audit log %s: %w", a.path, err)
		}
		tail = tail[:cut]
		if len(tail) == 0 {
			return nil
		}
	}
	body := tail[:len(tail)-1]
	line := body[bytes.LastIndexByte(body, '\n')+1:]
	e, err := parseAuditLine(line)
	if err != nil {
		return fmt.Errorf("audit log %s: last entry: %w; run `costor audit` to see where the log breaks, or move it aside to start a new log", a.path, err)
	}
	a.seq, a.prev = e.Seq, e.Hash
	return nil
}

// append adds e (Seq, Prev and Hash are set here). With durable it is on disk
// when append returns; otherwise within auditFlushInterval.
func (a *auditLog) append(e api.AuditEntry, durable bool) {
	e.Target = clip(e.Target)
	e.Detail = clip(e.Detail)
	e.Token = clip(e.Token)
	e.Host = clip(e.Host)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Round(time.Microsecond)
	a.mu.Lock()
	e.Seq = a.seq + 1
	e.Prev = a.prev
	hash, err := auditHash(a.key, &e)
	if err == nil {
		e.Hash = hash
		var line []byte
		if line, err = json.Marshal(&e); err == nil {
			_, err = a.w.Write(append(line, '\n'))
		}
	}
	if err == nil {
		a.seq, a.prev = e.Seq, e.Hash
		a.dirty = true
		if durable {
			err = a.w.Flush()
			a.dirty = false
		}
	}
	a.mu.Unlock()
	if err == nil && durable {
		err = a.f.Sync()
	}
	a.report(err)
}

// report logs a write error once until writing works again: the request
// it belongs to has been answered already, so the log is the only place.
func (a *auditLog) report(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.failed = false
		return
	}
	if !a.failed {
		a.logger.Error("cannot write the audit log; entries are being lost", "path", a.path, "err", err)
		a.failed = true
	}
}

func clip(s string) string {
	if len(s) <= maxAuditField {
		return s
	}
	return s[:maxAuditField] + "…"
}

// flush writes buffered entries and fsyncs the file.
func (a *auditLog) flush() error {
	a.mu.Lock()
	if !a.dirty {
		a.mu.Unlock()
		return nil
	}
	err := a.w.Flush()
	a.dirty = false
	a.mu.Unlock()
	if err == nil {
		err = a.f.Sync()
	}
	return err
}

func (a *auditLog) flusher() {
	defer close(a.done)
	t := time.NewTicker(auditFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.report(a.flush())
		}
	}
}

// close flushes everything and closes the file.
func (a *auditLog) close() error {
	close(a.stop)
	<-a.done
	err := a.flush()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close audit log %s: %w", a.path, err)
	}
	return nil
}

// chainError reports where the chain breaks.
type chainError struct {
	seq  uint64 // of the entry that fails, or the one expected there
	line int
	why  string
}

func (e *chainError) Error() string {
	return fmt.Sprintf("audit log chain broken at entry seq %d (line %d): %s", e.seq, e.line, e.why)
}

// read verifies the whole chain, then calls fn for every entry whose time
// is not before since. Both passes stop at the size the file had when read
// started, so entries appended meanwhile are neither half-read nor
// unverified. Verifying before the first fn call lets the caller answer
// an error instead of a partial listing.
func (a *auditLog) read(since time.Time, fn func(api.AuditEntry) error) error {
	if err := a.flush(); err != nil {
		return fmt.Errorf("flush audit log: %w", err)
	}
	f, err := os.Open(a.path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	if err := verifyAudit(io.NewSectionReader(f, 0, fi.Size()), a.key, nil); err != nil {
		return err
	}
	return verifyAudit(io.NewSectionReader(f, 0, fi.Size()), a.key, func(e api.AuditEntry) error {
		if e.Time.Before(since) {
			return nil
		}
		return fn(e)
	})
}

// verifyAudit checks the chain of the log in r, calling fn (if set) for
// each entry as it is verified.
func verifyAudit(r io.Reader, key []byte, fn func(api.AuditEntry) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	prev := ""
	var seq uint64
	for line := 1; ; line++ {
		raw, err := br.ReadSlice('\n')
		if err == io.EOF && len(raw) == 0 {
			return nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return &chainError{seq: seq + 1, line: line, why: "line too long"}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read audit log: %w", err)
		}
		if err == io.EOF {
			return &chainError{seq: seq + 1, line: line, why: "last line is incomplete"}
		}
		raw = raw[:len(raw)-1]
		e, perr := parseAuditLine(raw)
		switch {
		case perr != nil:
			return &chainError{seq: seq + 1, line: line, why: perr.Error()}
		case e.Seq != seq+1:
			return &chainError{seq: seq + 1, line: line, why: fmt.Sprintf("found seq %d: entries removed or reordered", e.Seq)}
		case e.Prev != prev:
			return &chainError{seq: e.Seq, line: line, why: "prev does not match the hash of the entry before"}
		}
		want, herr := auditHash(key, &e)
		if herr != nil || !hmac.Equal([]byte(want), []byte(e.Hash)) {
			return &chainError{seq: e.Seq, line: line, why: "hash does not match the entry: it was edited"}
		}
		if canon, err := json.Marshal(&e); err != nil || !bytes.Equal(canon, raw) {
			return &chainError{seq: e.Seq, line: line, why: "entry is not in the form costor writes: it was edited"}
		}
		prev, seq = e.Hash, e.Seq
		if fn != nil {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}
