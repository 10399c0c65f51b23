package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// Options say which server to reach and how to trust it.
type Options struct {
	// URL is "https://HOST:PORT" (a trailing slash is tolerated).
	URL string
	// Token is the bearer token (surrounding white space, such as the
	// newline of a token file, is ignored).
	Token string
	// CACertFile is a PEM file to trust: the server's DATA/tls/cert.pem or
	// the CA that signed its certificate.
	CACertFile string
	// Fingerprint pins the server's leaf certificate: "SHA256:<64 hex>"
	// of its DER encoding (colons allowed, case-insensitive).
	Fingerprint string
	// Timeout bounds a small request, and a stalled stream: no byte for
	// that long ends it. Zero: 60s. Requests with large bodies get that
	// plus the time to send them at minRate.
	Timeout time.Duration
	// Logger receives retries; nil: discard.
	Logger *slog.Logger
}

const (
	defaultTimeout = 60 * time.Second
	// minRate is the slowest upload the deadlines allow for (bytes/s): a
	// 256 MiB blob gets about 8.5 minutes beyond Timeout.
	minRate = 512 << 10
	// attempts is how often a retryable request is tried in all.
	attempts = 4
	// maxListBody bounds a JSON listing (objects, tokens, audit): a
	// million snapshot records list in about 100 MiB.
	maxListBody = 256 << 20
	// maxErrorBody bounds the body of an error answer:
	maxErrorBody = 256 << 10 // a 409 lists up to 1,000 hex IDs
)

// Client is a connection pool to one server, safe for concurrent use.
type Client struct {
	base      string // "https://host:port", for requests and messages
	token     string
	transport *http.Transport
	http      *http.Client
	timeout   time.Duration
	log       *slog.Logger

	noHead atomic.Bool // the server answered a HEAD with 405: use GET

	mu       sync.Mutex
	identity *api.Whoami // cached after the first Whoami, for 403 messages
}

var (
	_ repo.Remote     = (*Client)(nil)
	_ storage.Storage = objectStorage{}
)

// New checks opts and returns a client; it does not connect yet.
func New(opts Options) (*Client, error) {
	base, host, err := parseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(opts.Token)
	if strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return nil, errors.New("the token holds white space or control characters: check --token-file / COSTOR_TOKEN_FILE")
	}
	cfg, err := tlsConfig(host, opts.CACertFile, opts.Fingerprint)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       (&net.Dialer{Timeout: min(timeout, 30*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: true, // a custom TLS config turns HTTP/2 off unless asked
		// HTTP/2 multiplexes the parallel uploads of a backup (2-4) on one
		// connection; these bound HTTP/1.1, should a proxy force it.
		MaxConnsPerHost:       8,
		MaxIdleConnsPerHost:   8,
		MaxIdleConns:          8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 30*time.Second),
		ResponseHeaderTimeout: 0, // the per-attempt deadline covers it, scaled by body size
		ExpectContinueTimeout: time.Second,
		// Pings find a dead connection under a long request (prune) that
		// no deadline bounds.
		// Windows the size of a few chunks keep parallel blob reads
		// (restore, the mount's read-ahead) from stalling each stream.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second,
			MaxReceiveBufferPerConnection: 32 << 20, MaxReceiveBufferPerStream: 16 << 20},
	}
	return &Client{
		base:      base,
		token:     token,
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// A redirect would carry the token elsewhere: the protocol has
			// none, so one is answered as an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout,
		log:     logger,
	}, nil
}

// parseURL accepts "https://HOST:PORT" with an optional trailing slash.
func parseURL(raw string) (base, host string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("server URL %q: want https://HOST:PORT", raw)
	}
	if u.Scheme != "https" {
		return "", "", fmt.Errorf("server URL %q: a costor server speaks only TLS: use https://%s", raw, u.Host)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("server URL %q: want https://HOST:PORT with nothing after it", raw)
	}
	return "https://" + u.Host, u.Hostname(), nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

// URL is the server's base URL, "https://host:port".
func (c *Client) URL() string { return c.base }

// request is one API call.
type request struct {
	method string
	path   string // escaped path and query, starting with "/v1/"
	action string // what it does, for messages: "upload blobs"
	// body returns a fresh reader over the request body for each attempt;
	// nil: no body.
	body        func() io.Reader
	bodyLen     int64
	contentType string
	// retry: the request is idempotent and body may be called again.
	retry bool
	// noDeadline: only ctx and connection health bound the wait for the
	// answer (prune).
	noDeadline bool
	// statusErr adjusts the error of a non-2xx answer (404 → ErrNotExist
	// of a handle, 409 → missing blobs).
	statusErr func(*StatusError) error
}

// transientError marks a failure while reading a response that may be
// retried because nothing was handed to a caller yet.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// call performs r, retrying it when allowed, and hands a 2xx answer to
// handle, whose error is returned (retried only if it is a
// transientError). handle may be nil: the body is then discarded.
func (c *Client) call(ctx context.Context, r *request, handle func(*http.Response) error) error {
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return fmt.Errorf("%w (after: %v)", err, last)
			}
			return err
		}
		retryable, err := c.attempt(ctx, r, handle)
		if err == nil {
			return nil
		}
		var te transientError
		if errors.As(err, &te) {
			err = te.err
		}
		if !r.retry || !retryable || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		last = err
		wait := backoff(attempt, err)
		c.log.Warn("retrying server request", "server", c.base, "action", r.action, "attempt", attempt+1, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// backoff is the wait before attempt+1: 0.5s, 1s, 2s with jitter, or
// what a 503's Retry-After asks (at most 10s).
func backoff(attempt int, err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) && se.retryAfter > 0 {
		return min(se.retryAfter, 10*time.Second)
	}
	d := 250 * time.Millisecond << attempt
	return d*3/4 + rand.N(d/2)
}

// attempt sends r once; retryable says whether its failure may be retried.
func (c *Client) attempt(ctx context.Context, r *request, handle func(*http.Response) error) (retryable bool, err error) {
	actx, cancel := context.WithCancelCause(ctx)
	deadline := &timeoutError{server: c.base, action: r.action}
	timer := time.AfterFunc(time.Hour, func() { cancel(deadline) })
	timer.Stop()
	if !r.noDeadline {
		deadline.after = c.timeout + time.Duration(r.bodyLen)*time.Second/minRate
		timer.Reset(deadline.after)
	}
	defer func() {
		timer.Stop()
		cancel(nil)
	}()

	req, err := http.NewRequestWithContext(actx, r.method, c.base+r.path, nil)
	if err != nil {
		return false, fmt.Errorf("%s at %s: %w", r.action, c.base, err)
	}
	var body *recordingReader
	if r.body != nil {
		body = &recordingReader{r: r.body(), want: r.bodyLen}
		req.Body = io.NopCloser(body)
		req.ContentLength = r.bodyLen
		if r.bodyLen == 0 {
			req.Body = http.NoBody
		}
		if r.retry {
			req.GetBody = func() (io.ReadCloser, error) {
				body = &recordingReader{r: r.body(), want: r.bodyLen}
				return io.NopCloser(body), nil
			}
		}
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "costor")

	resp, err := c.http.Do(req)
	if err != nil {
		if body != nil && body.failure() != nil {
			// The caller's reader failed: its error, not the transport's.
			return false, fmt.Errorf("%s at %s: %w", r.action, c.base, body.failure())
		}
		return c.transportError(ctx, actx, r.action, err)
	}
	timer.Stop()
	resp.Body = &watchedBody{ReadCloser: resp.Body, timer: timer, idle: c.timeout, ctx: ctx, actx: actx, deadline: deadline}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := c.statusError(ctx, r.action, resp)
		var out error = se
		if r.statusErr != nil {
			out = r.statusErr(se)
		}
		return resp.StatusCode >= 500, out
	}
	if handle == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return true, transientError{fmt.Errorf("%s at %s: read answer: %w", r.action, c.base, err)}
		}
		return false, nil
	}
	err = handle(resp)
	var te transientError
	return errors.As(err, &te), err
}

// readAll reads a whole answer of at most limit bytes; a read failure is
// transient, an answer too long is not.
func (c *Client) readAll(resp *http.Response, action string, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%s at %s: the answer is %d bytes, more than the %d allowed", action, c.base, resp.ContentLength, limit)
	}
	var buf []byte
	if resp.ContentLength > 0 {
		buf = make([]byte, 0, resp.ContentLength)
	}
	w := bytesWriter{buf}
	n, err := io.Copy(&w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, transientError{fmt.Errorf("%s at %s: read answer: %w", action, c.base, err)}
	}
	if n > limit {
		return nil, fmt.Errorf("%s at %s: the answer is more than the %d bytes allowed", action, c.base, limit)
	}
	return w.b, nil
}

type bytesWriter struct{ b []byte }

func (w *bytesWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// recordingReader remembers the first error of the caller's reader, so a
// failing source is reported as itself and not retried. A source that
// ends before the announced length is such an error too.
type recordingReader struct {
	r    io.Reader
	want int64
	got  int64
	mu   sync.Mutex
	err  error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.got += int64(n)
	if err == io.EOF && r.got < r.want {
		err = fmt.Errorf("the data ends after %d of %d bytes: %w", r.got, r.want, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *recordingReader) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// watchedBody ends a response whose server sends nothing for idle while
// someone waits in Read; time spent outside Read (in a caller's fn) does
// not count.
type watchedBody struct {
	io.ReadCloser
	timer    *time.Timer
	idle     time.Duration
	ctx      context.Context // the caller's
	actx     context.Context // the attempt's
	deadline *timeoutError
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cerr := b.ctx.Err(); cerr != nil {
			return n, cerr
		}
		if cause := context.Cause(b.actx); cause == b.deadline {
			b.deadline.after = b.idle
			b.deadline.stalled = true
			return n, b.deadline
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}

// timeoutError is an attempt that ran out of time.
type timeoutError struct {
	server, action string
	after          time.Duration
	stalled        bool
}

func (e *timeoutError) Error() string {
	if e.stalled {
		return fmt.Sprintf("%s at %s: the server sent nothing for %v", e.action, e.server, e.after)
	}
	return fmt.Sprintf("%s at %s: no answer within %v", e.action, e.server, e.after)
}

func (e *timeoutError) Timeout() bool { return true }

// retryAfter parses a Retry-After of whole seconds.
func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
