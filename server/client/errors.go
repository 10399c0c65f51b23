package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// Errors a caller can recognise with errors.Is, beside storage.ErrNotExist
// (a 404) and repo.ErrMissingBlobs (a commit's 409).
var (
	// ErrUnauthorized: the server refused the token (401).
	ErrUnauthorized = errors.New("token refused")
	// ErrForbidden: the token's role does not allow the request (403).
	ErrForbidden = errors.New("not allowed for the token's role")
	// ErrUntrusted: the server's certificate does not match --cacert or
	// --tls-fingerprint.
	ErrUntrusted = errors.New("server certificate not trusted")
)

// StatusError is a non-2xx answer of the server.
type StatusError struct {
	URL     string // the server, "https://host:port"
	Action  string // what was asked: "upload blobs"
	Status  int    // HTTP status
	Message string // the server's api.Error text, if any
	Missing []string
	// Role describes the token's role on a 403 ("agent for host web1"),
	// when the server told it.
	Role       string
	retryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := ""
	if e.Message != "" {
		msg = " (server: " + e.Message + ")"
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("token refused by %s: it is missing, wrong or revoked (--token-file / COSTOR_TOKEN_FILE)%s", e.URL, msg)
	case e.Status == http.StatusForbidden:
		role := e.Role
		if role == "" {
			role = "unknown"
		}
		return fmt.Sprintf("%s refused to %s: the token's role (%s) may not %s%s", e.URL, e.Action, role, e.Action, msg)
	case e.Status == http.StatusNotFound:
		return fmt.Sprintf("%s at %s: not found%s", e.Action, e.URL, msg)
	case e.Status == http.StatusBadRequest && msg != "":
		return fmt.Sprintf("%s at %s: the server refused the request%s", e.Action, e.URL, msg)
	case e.Status == http.StatusBadRequest:
		return fmt.Sprintf("%s at %s: the server rejected the request as malformed; are client and server the same costor version?", e.Action, e.URL)
	case e.Status == http.StatusRequestEntityTooLarge:
		return fmt.Sprintf("%s at %s: the request is larger than the server accepts%s", e.Action, e.URL, msg)
	case e.Status == http.StatusMethodNotAllowed && msg != "":
		return fmt.Sprintf("%s at %s: the server does not allow it%s", e.Action, e.URL, msg)
	case e.Status == http.StatusMethodNotAllowed:
		return fmt.Sprintf("%s at %s: the server does not support this request; are client and server the same costor version?", e.Action, e.URL)
	case e.Status >= 300 && e.Status < 400:
		return fmt.Sprintf("%s at %s: the server answered a redirect (%d %s), which the protocol never uses: check --repo", e.Action, e.URL, e.Status, http.StatusText(e.Status))
	case e.Status >= 500:
		return fmt.Sprintf("%s at %s: server failure %d %s%s; see the server's log", e.Action, e.URL, e.Status, http.StatusText(e.Status), msg)
	}
	return fmt.Sprintf("%s at %s: %d %s%s", e.Action, e.URL, e.Status, http.StatusText(e.Status), msg)
}

// Unwrap lets errors.Is recognise 401, 403 and 404.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return storage.ErrNotExist
	}
	return nil
}

// statusError reads a non-2xx answer into a StatusError.
func (c *Client) statusError(ctx context.Context, action string, resp *http.Response) *StatusError {
	se := &StatusError{URL: c.base, Action: action, Status: resp.StatusCode}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		se.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var ae api.Error
	if err := json.Unmarshal(data, &ae); err == nil && ae.Error != "" {
		se.Message = oneLine(ae.Error)
		if len(ae.Missing) > 1000 {
			ae.Missing = ae.Missing[:1000]
		}
		se.Missing = ae.Missing
	} else {
		se.Message = oneLine(string(data))
	}
	if resp.StatusCode == http.StatusForbidden {
		se.Role = c.roleFor(ctx)
	}
	return se
}

// oneLine makes a server's text safe and short for a terminal.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// roleFor describes the token's role for a 403, asking the server once.
func (c *Client) roleFor(ctx context.Context) string {
	c.mu.Lock()
	w := c.identity
	c.mu.Unlock()
	if w == nil {
		ctx, cancel := context.WithTimeout(ctx, min(c.timeout, 10*time.Second))
		defer cancel()
		got, err := c.Whoami(ctx)
		if err != nil {
			return ""
		}
		w = &got
	}
	return describeRole(*w)
}

func describeRole(w api.Whoami) string {
	switch {
	case w.Role == api.RoleAgent:
		return "agent for host " + w.Host
	case w.Role == api.RoleReader && w.Host != "":
		return "reader of host " + w.Host
	case w.Role == api.RoleReader:
		return "reader of every host"
	}
	return w.Role
}

// transportError explains a request that got no HTTP answer; retryable
// says whether trying again may help.
func (c *Client) transportError(ctx, actx context.Context, action string, err error) (bool, error) {
	if cerr := ctx.Err(); cerr != nil {
		return false, fmt.Errorf("%s at %s: %w", action, c.base, cerr)
	}
	var te *timeoutError
	if cause := context.Cause(actx); errors.As(cause, &te) {
		return true, te
	}
	addr := strings.TrimPrefix(c.base, "https://")
	var fp *errFingerprintMismatch
	if errors.As(err, &fp) {
		return false, fmt.Errorf("%w: the certificate of %s does not match --tls-fingerprint: %v; if the server's certificate was replaced, pin the new fingerprint", ErrUntrusted, c.base, fp)
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return false, fmt.Errorf("%w: the certificate of %s does not match --cacert: %v; connect by a name the certificate holds, or pin it with --tls-fingerprint", ErrUntrusted, c.base, hostErr)
	}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var ierr x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &ierr) {
		return false, fmt.Errorf("%w: the certificate of %s does not match --cacert: %v", ErrUntrusted, c.base, unwrapURL(err))
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// net/http replaces the RecordHeaderError of an HTTP answer by a
		// plain error with that text.
		return false, fmt.Errorf("%s does not speak TLS: is it a costor server?", addr)
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return false, fmt.Errorf("TLS handshake with %s failed: %v", c.base, alert)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true, fmt.Errorf("cannot connect to %s: connection refused: is `costor server` running and listening there?", addr)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout, fmt.Errorf("cannot connect to %s: %v", addr, dnsErr)
	}
	return true, fmt.Errorf("%s at %s: %w", action, c.base, unwrapURL(err))
}

// unwrapURL drops the url.Error's "Get \"https://…\":" prefix: messages
// name the server and action themselves.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
