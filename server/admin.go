package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/costor/costor/server/api"
)

const maxTokenName = 255

func (s *server) createToken(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not manage tokens: only an admin token may", rq.who.Role)
		return
	}
	var req api.TokenRequest
	if status, err := decodeJSONBody(w, rq.Request, &req); err != nil {
		s.fail(w, rq, status, fmt.Errorf("token request: %w", err))
		return
	}
	if err := validateRoleHost(req.Role, req.Host); err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	if len(req.Name) > maxTokenName || !utf8.ValidString(req.Name) || containsControl(req.Name) {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("token name must be UTF-8 without control characters, at most %d bytes", maxTokenName))
		return
	}
	tok, rec, err := newTokenSecret(req.Role, req.Host, req.Name, s.now())
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if err := s.tokens.add(rec); err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	rq.target, rq.host = "tokens/"+rec.ID, rec.Host
	rq.detail = fmt.Sprintf("role %s, name %q", rec.Role, rec.Name)
	writeJSON(w, http.StatusOK, api.TokenCreated{Token: rec.public(), Secret: tok})
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func (s *server) listTokens(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not manage tokens: only an admin token may", rq.who.Role)
		return
	}
	writeJSON(w, http.StatusOK, s.tokens.all())
}

func (s *server) revokeToken(w http.ResponseWriter, rq *request) {
	tid := rq.PathValue("id")
	rq.target = "tokens/" + tid
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not manage tokens: only an admin token may", rq.who.Role)
		return
	}
	t, found, err := s.tokens.revoke(tid, s.now())
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if !found {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("no token with id %q: see `costor token list`", tid))
		return
	}
	rq.host = t.Host
	writeJSON(w, http.StatusOK, t)
}

// readAudit verifies the chain and streams the entries as a JSON array.
func (s *server) readAudit(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not read the audit log: only an admin token may", rq.who.Role)
		return
	}
	var since time.Time
	if v := rq.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("since=%q is not an RFC 3339 time such as 2006-01-02T15:04:05Z", v))
			return
		}
		since = t
	}
	var bw *bufio.Writer
	n := 0
	err := s.audit.read(since, func(e api.AuditEntry) error {
		if bw == nil {
			w.Header().Set("Content-Type", "application/json")
			bw = bufio.NewWriterSize(w, 64<<10)
			bw.WriteByte('[')
		} else {
			bw.WriteByte(',')
		}
		n++
		line, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		_, err = bw.Write(line)
		return err
	})
	var broken *chainError
	switch {
	case errors.As(err, &broken):
		s.logger.Error("audit log chain is broken", "seq", broken.seq, "line", broken.line, "why", broken.why)
		writeError(w, http.StatusInternalServerError, err.Error())
		rq.detail = err.Error()
		return
	case err != nil && bw == nil:
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	case err != nil:
		panic(http.ErrAbortHandler)
	}
	rq.detail = fmt.Sprintf("%d entries", n)
	if bw == nil {
		writeJSON(w, http.StatusOK, []api.AuditEntry{})
		return
	}
	bw.WriteByte(']')
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

func (s *server) prune(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not prune: only an admin token may", rq.who.Role)
		return
	}
	var req api.PruneRequest
	if status, err := decodeJSONBody(w, rq.Request, &req); err != nil {
		s.fail(w, rq, status, fmt.Errorf("prune request: %w", err))
		return
	}
	grace := s.grace
	if req.GraceSeconds != nil {
		if *req.GraceSeconds < 0 {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("prune request: grace_seconds %d is negative", *req.GraceSeconds))
			return
		}
		grace = time.Duration(*req.GraceSeconds) * time.Second
	}
	res, err := s.runPrune(rq.Context(), req.DryRun, grace)
	var refused *pruneRefusedError
	switch {
	case errors.As(err, &refused):
		s.fail(w, rq, http.StatusConflict, err)
		return
	case err != nil:
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	rq.detail = fmt.Sprintf("dry run %v: %d packs deleted, %d written, %d blobs, %d bytes freed", req.DryRun, res.PacksDeleted, res.PacksWritten, res.BlobsDeleted, res.BytesFreed)
	writeJSON(w, http.StatusOK, res)
}
