package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/costor/costor/server/api"
)

// Per-request deadlines, set on the connection (stream, with HTTP/2) for
// reading the body and writing the answer. Bulk transfers get long ones:
// a 256 MiB blob over a slow site link takes minutes.
const (
	timeoutSmall = time.Minute
	timeoutBulk  = 30 * time.Minute
	timeoutPrune = 12 * time.Hour
)

// request is one authenticated request on its way through a handler; the
// handler fills in what the audit entry says about it.
type request struct {
	*http.Request
	who    identity
	action string
	target string
	host   string // the host acted on, when the token is not bound to one
	detail string
}

// method is one method of an endpoint. An empty action is not audited
// unless it is refused (whoami reads no data).
type method struct {
	action  string
	timeout time.Duration
	serve   func(w http.ResponseWriter, rq *request)
}

type endpoint map[string]method

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	objects := endpoint{
		http.MethodGet:    {"object.get", timeoutBulk, s.getObject},
		http.MethodHead:   {"object.stat", timeoutSmall, s.getObject},
		http.MethodPut:    {"object.put", timeoutSmall, s.putObject},
		http.MethodDelete: {"snapshot.forget", timeoutBulk, s.deleteObject},
	}
	for pattern, e := range map[string]endpoint{
		api.PathWhoami:                           {http.MethodGet: {"", timeoutSmall, s.whoami}},
		api.PathObjects + "{kind}":               {http.MethodGet: {"object.list", timeoutBulk, s.listObjects}},
		api.PathObjects + "{kind}/{name}":        objects,
		api.PathMissing:                          {http.MethodPost: {"blobs.missing", timeoutSmall, s.missing}},
		api.PathBlobs:                            {http.MethodPost: {"blobs.upload", timeoutBulk, s.upload}},
		api.PathBlob + "{id}":                    {http.MethodGet: {"blob.get", timeoutBulk, s.getBlob}},
		api.PathSnapshots:                        {http.MethodPost: {"snapshot.commit", timeoutBulk, s.commit}},
		api.PathSnapshotRefsPrefix + "{id}/refs": {http.MethodGet: {"snapshot.refs", timeoutBulk, s.refs}},
		api.PathTokens:                           {http.MethodGet: {"token.list", timeoutSmall, s.listTokens}, http.MethodPost: {"token.create", timeoutSmall, s.createToken}},
		api.PathTokens + "/{id}":                 {http.MethodDelete: {"token.revoke", timeoutSmall, s.revokeToken}},
		api.PathAudit:                            {http.MethodGet: {"audit.read", timeoutBulk, s.readAudit}},
		api.PathPrune:                            {http.MethodPost: {"prune", timeoutPrune, s.prune}},
	} {
		mux.Handle(pattern, s.handle(e))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s: see docs/server.md for the protocol", r.URL.Path))
	})
	return mux
}

// handle authenticates, dispatches by method and audits.
func (s *server) handle(e endpoint) http.Handler {
	allowed := make([]string, 0, len(e))
	for m := range e {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, known := e[r.Method]
		action := m.action
		if !known {
			action = strings.ToLower(r.Method) + " " + r.URL.Path
		}
		sw := &statusWriter{ResponseWriter: w}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		rec, err := s.tokens.authenticate(tok)
		if err != nil {
			writeError(sw, http.StatusUnauthorized, err.Error())
			s.auditRequest(&request{Request: r, who: identityOf(rec), action: nonEmpty(action, "request"), target: r.URL.Path, detail: err.Error()}, sw.status)
			return
		}
		if !known {
			w.Header().Set("Allow", allow)
			writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, allow))
			return
		}
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(m.timeout)
		_ = rc.SetReadDeadline(deadline) // not supported by every transport: then the server-wide timeouts apply
		_ = rc.SetWriteDeadline(deadline)
		rq := &request{Request: r, who: identityOf(rec), action: action, target: r.URL.Path}
		// Deferred so that a handler aborting a half-sent answer
		// (http.ErrAbortHandler) is audited too.
		defer func() {
			status := sw.status
			if p := recover(); p != nil {
				status = http.StatusInternalServerError
				defer panic(p)
			}
			if status == 0 {
				status = http.StatusOK
			}
			if action != "" || status == http.StatusForbidden {
				s.auditRequest(rq, status)
			}
		}()
		m.serve(sw, rq)
	})
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// auditRequest writes the request's audit entry; refusals are synced at once.
func (s *server) auditRequest(rq *request, status int) {
	result := api.ResultAllowed
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		result = api.ResultRefused
	}
	name := rq.who.Name
	if name == "" {
		name = "-"
	}
	host := rq.who.Host
	if host == "" {
		host = rq.host
	}
	s.audit.append(api.AuditEntry{
		Time:    s.now(),
		Token:   name,
		TokenID: rq.who.TokenID,
		Role:    rq.who.Role,
		Host:    host,
		Remote:  rq.RemoteAddr,
		Action:  nonEmpty(rq.action, "whoami"),
		Target:  rq.target,
		Result:  result,
		Status:  status,
		Detail:  rq.detail,
	}, result == api.ResultRefused)
}

// statusWriter remembers the status for the audit entry.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// started reports whether the answer's header is out, so an error can no
// longer become an error status.
func started(w http.ResponseWriter) bool {
	sw, ok := w.(*statusWriter)
	return !ok || sw.status != 0
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Del("Content-Length") // set for a body that failed before it started
	h.Del(api.BlobTypeHeader)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}

// refuse answers 403 and says why in the audit entry.
func refuse(w http.ResponseWriter, rq *request, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	rq.detail = msg
	writeError(w, http.StatusForbidden, msg)
}

// fail answers an error of the caller's (status < 500) or, logged, of the
// server's own.
func (s *server) fail(w http.ResponseWriter, rq *request, status int, err error) {
	rq.detail = err.Error()
	if status >= 500 {
		if rq.Context().Err() != nil {
			return // the client is gone; nobody reads the answer
		}
		s.logger.Error("request failed", "action", rq.action, "target", rq.target, "token", rq.who.Name, "err", err)
	}
	writeError(w, status, err.Error())
}

// bodyStatus classifies an error reading a request body.
func bodyStatus(err error) int {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// bodyError words a body error for the caller.
func bodyError(what string, err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("%s is larger than the limit of %d bytes", what, tooBig.Limit)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// decodeJSONBody reads a small JSON request body strictly; an empty body
// decodes as the zero value.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	// Read whole first: a decoder stopping at the first bad byte would
	// report an oversized body as malformed rather than too large.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxJSONBody))
	if err != nil {
		return bodyStatus(err), bodyError("JSON body", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return 0, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return http.StatusBadRequest, fmt.Errorf("JSON body: %w", err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("JSON body: data after the object")
	}
	return 0, nil
}

func (s *server) whoami(w http.ResponseWriter, rq *request) {
	writeJSON(w, http.StatusOK, api.Whoami{
		TokenID: rq.who.TokenID, Name: rq.who.Name, Role: rq.who.Role, Host: rq.who.Host,
		RepositoryID: s.cfg.ID,
	})
}
