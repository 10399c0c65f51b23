//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serverStartTimeout bounds how long a server may take to accept TLS.
const serverStartTimeout = 20 * time.Second

// syncBuffer is a bytes.Buffer that a running process writes while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// siteServer is a running `costor server --data DIR --listen 127.0.0.1:PORT`
// of one test. It can be killed and restarted on the same DIR and port.
type siteServer struct {
	t           *testing.T
	box         *sandbox // the server's own HOME and XDG directories
	data        string   // --data DIR
	addr        string   // 127.0.0.1:PORT
	url         string   // https://127.0.0.1:PORT
	cacert      string   // DIR/tls/cert.pem
	fingerprint string   // SHA256:<hex of the leaf certificate DER>
	adminToken  string   // DIR/admin.token
	roots       *x509.CertPool

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	starts int
}

// freePort returns a TCP port on 127.0.0.1 that nobody listened on a
// moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts a server on a fresh data directory and a free port,
// waits until it accepts TLS with its own certificate, and reads its admin
// token. Cleanup kills it.
func startServer(t *testing.T) *siteServer {
	t.Helper()
	box := newSandbox(t)
	delete(box.vars, "COSTOR_REPO")
	delete(box.vars, "COSTOR_PASSWORD")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	srv := &siteServer{
		t: t, box: box, data: box.path("data"), addr: addr, url: "https://" + addr,
	}
	srv.cacert = filepath.Join(srv.data, "tls", "cert.pem")
	t.Cleanup(srv.kill9)
	srv.start()
	return srv
}

// start runs the server process and waits until it is ready.
func (srv *siteServer) start() {
	t := srv.t
	t.Helper()
	srv.mu.Lock()
	if srv.cmd != nil && !srv.exitedLocked() {
		srv.mu.Unlock()
		t.Fatal("siteServer.start: already running")
	}
	args := []string{"server", "--data", srv.data, "--listen", srv.addr}
	cmd := exec.Command(costorBin, args...)
	cmd.Env = srv.box.env()
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		srv.mu.Unlock()
		t.Fatalf("start costor %q: %v", args, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	srv.cmd, srv.stderr, srv.done = cmd, stderr, done
	srv.starts++
	srv.mu.Unlock()

	begin := time.Now()
	deadline := begin.Add(serverStartTimeout)
	for {
		if srv.exited() {
			t.Fatalf("costor %q exited (%v) before accepting TLS on %s:\n%s", args, cmd.ProcessState, srv.addr, stderr.String())
		}
		if err := srv.loadCert(); err == nil {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", srv.addr,
				&tls.Config{RootCAs: srv.roots, ServerName: "127.0.0.1"})
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("costor server: no TLS handshake with its own %s on %s within %v: %v\n%s",
					srv.cacert, srv.addr, serverStartTimeout, err, stderr.String())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("costor server: %v within %v\n%s", err, serverStartTimeout, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(srv.data, "admin.token"))
	if err != nil {
		t.Fatalf("costor server is up but %v", err)
	}
	srv.adminToken = strings.TrimSpace(string(tok))
	t.Logf("costor server on %s ready in %v (start %d), fingerprint %s", srv.addr,
		time.Since(begin).Round(time.Millisecond), srv.starts, srv.fingerprint)
}

// loadCert reads DIR/tls/cert.pem into the pool and computes the leaf's
// fingerprint.
func (srv *siteServer) loadCert() error {
	data, err := os.ReadFile(srv.cacert)
	if err != nil {
		return fmt.Errorf("no certificate yet: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM CERTIFICATE block (yet)", srv.cacert)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return fmt.Errorf("%s: %w", srv.cacert, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("%s: not usable as a CA", srv.cacert)
	}
	sum := sha256.Sum256(block.Bytes)
	srv.roots = pool
	srv.fingerprint = "SHA256:" + hex.EncodeToString(sum[:])
	return nil
}

func (srv *siteServer) exited() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.exitedLocked()
}

func (srv *siteServer) exitedLocked() bool {
	select {
	case <-srv.done:
		return true
	default:
		return false
	}
}

func (srv *siteServer) pid() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.cmd.Process.Pid
}

// log is everything the current server process printed.
func (srv *siteServer) log() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.stderr == nil {
		return ""
	}
	return srv.stderr.String()
}

// kill9 sends SIGKILL and waits; a server that died on its own before is a
// failure (it must run until told to stop), unless it was stopped on purpose.
func (srv *siteServer) kill9() {
	srv.mu.Lock()
	cmd, done, stderr := srv.cmd, srv.done, srv.stderr
	srv.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	checkNoPanic(srv.t, []string{"server"}, stderr.String())
}

// stop sends SIGTERM and waits up to 15 s; it reports how the process ended.
func (srv *siteServer) stop() string {
	t := srv.t
	t.Helper()
	srv.mu.Lock()
	cmd, done := srv.cmd, srv.done
	srv.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Errorf("costor server still running 15 s after SIGTERM; killing it:\n%s", srv.log())
		srv.kill9()
	}
	checkNoPanic(t, []string{"server"}, srv.log())
	return cmd.ProcessState.String()
}

// peakRSS is the server process's VmHWM in bytes (0 if it cannot be read).
func (srv *siteServer) peakRSS() uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.pid()))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// client is a sandbox that talks to srv with token: its own HOME, XDG
// cache (the client's cache index) and config directories.
func (srv *siteServer) client(t testing.TB, token string) *sandbox {
	t.Helper()
	c := newSandbox(t)
	c.vars["COSTOR_REPO"] = srv.url
	c.vars["COSTOR_CACERT"] = srv.cacert
	c.vars["COSTOR_TOKEN"] = token
	c.vars["COSTOR_TEST_FAST_KDF"] = "1"
	delete(c.vars, "COSTOR_PASSWORD")
	return c
}

// orgKeys are the files of `costor key init`.
type orgKeys struct {
	org, recovery string
}

// newOrgKeys makes an organisation key and a recovery key (wrapped under
// testPassword), offline.
func newOrgKeys(t testing.TB) orgKeys {
	t.Helper()
	s := newSandbox(t)
	s.vars["COSTOR_TEST_FAST_KDF"] = "1"
	delete(s.vars, "COSTOR_REPO")
	k := orgKeys{org: s.path("org.key"), recovery: s.path("recovery.key")}
	s.mustCostor("key", "init", "--org-out", k.org, "--recovery-out", k.recovery)
	return k
}

// agent is a client with the organisation key and its own host key file
// (created by its first backup).
func (srv *siteServer) agent(t testing.TB, token string, keys orgKeys) *sandbox {
	t.Helper()
	c := srv.client(t, token)
	c.vars["COSTOR_ORG_KEY_FILE"] = keys.org
	c.vars["COSTOR_HOST_KEY_FILE"] = c.path("host.key")
	return c
}

// recoveryAdmin is a client that reads with the recovery key alone: no
// organisation key, no host key.
func (srv *siteServer) recoveryAdmin(t testing.TB, keys orgKeys) *sandbox {
	t.Helper()
	c := srv.client(t, srv.adminToken)
	c.vars["COSTOR_RECOVERY_KEY_FILE"] = keys.recovery
	c.vars["COSTOR_PASSWORD"] = testPassword
	return c
}

var tokenPattern = regexp.MustCompile(`^costor_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`)

// createToken runs `costor token create` as admin and returns the secret.
func (srv *siteServer) createToken(t testing.TB, role, host, name string) string {
	t.Helper()
	admin := srv.client(t, srv.adminToken)
	args := []string{"token", "create", "--role", role, "--name", name}
	if host != "" {
		args = append(args, "--host", host)
	}
	out := admin.mustCostor(args...)
	secret := strings.TrimSpace(out)
	if strings.Contains(secret, "\n") || !tokenPattern.MatchString(secret) {
		t.Fatalf("costor %q: stdout is not a token alone (costor_<16 hex>_<43 base64url>): %q", args, out)
	}
	return secret
}

// tokenJSON is one element of `costor --json token list`.
type tokenJSON struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Host    string    `json:"host"`
	Created time.Time `json:"created"`
}

func parseTokens(t testing.TB, out string) []tokenJSON {
	t.Helper()
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raws); err != nil {
		t.Fatalf("token list --json: not a JSON array of objects: %v\n%s", err, out)
	}
	for _, r := range raws {
		for _, key := range []string{"id", "name", "role", "host", "created"} {
			if _, ok := r[key]; !ok {
				t.Errorf("token list --json: element lacks %q", key)
			}
		}
		if _, ok := r["secret"]; ok {
			t.Errorf("token list --json shows a secret")
		}
	}
	var toks []tokenJSON
	if err := json.Unmarshal([]byte(out), &toks); err != nil {
		t.Fatalf("token list --json: %v\n%s", err, out)
	}
	return toks
}

// auditJSON is one element of `costor --json audit`.
type auditJSON struct {
	Time   time.Time `json:"time"`
	Token  string    `json:"token"`
	Host   string    `json:"host"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Result string    `json:"result"`
	Status int       `json:"status"`
}

func (a auditJSON) String() string {
	return fmt.Sprintf("%s token=%q host=%q %s %q → %s %d", a.Time.Format(time.RFC3339Nano), a.Token, a.Host, a.Action, a.Target, a.Result, a.Status)
}

func parseAudit(t testing.TB, out string) []auditJSON {
	t.Helper()
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raws); err != nil {
		t.Fatalf("audit --json: not a JSON array of objects: %v\n%.2000s", err, out)
	}
	for i, r := range raws {
		for _, key := range []string{"time", "token", "host", "action", "target", "result"} {
			if _, ok := r[key]; !ok {
				t.Errorf("audit --json: entry %d lacks %q", i, key)
			}
		}
	}
	var entries []auditJSON
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("audit --json: %v", err)
	}
	for _, e := range entries {
		if e.Result != "allowed" && e.Result != "refused" {
			t.Errorf("audit entry with result %q (want allowed or refused): %v", e.Result, e)
		}
	}
	return entries
}

// httpClient talks to srv directly, trusting its certificate: for probes
// that bypass the costor client's own checks.
func (srv *siteServer) httpClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: srv.roots, ServerName: "127.0.0.1"},
			ForceAttemptHTTP2: true,
		},
	}
}

// probe is one raw HTTPS request to srv and its answer.
type probe struct {
	status int
	body   []byte
	proto  string
}

func (srv *siteServer) request(t testing.TB, method, path, token string, body []byte) probe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := srv.httpClient()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return probe{status: resp.StatusCode, body: b, proto: resp.Proto}
}

// objectNames lists /v1/objects/{kind} as token sees it.
func (srv *siteServer) objectNames(t testing.TB, kind, token string) []string {
	t.Helper()
	p := srv.request(t, http.MethodGet, "/v1/objects/"+kind, token, nil)
	if p.status != http.StatusOK {
		t.Fatalf("GET /v1/objects/%s: %d %s", kind, p.status, p.body)
	}
	var infos []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(p.body, &infos); err != nil {
		t.Fatalf("GET /v1/objects/%s: not a JSON array: %v: %s", kind, err, p.body)
	}
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names
}

// rawHTTP sends a plain-text HTTP/1.1 request to the TLS port and returns
// what came back within a few seconds (possibly nothing).
func rawHTTP(t testing.TB, addr, request string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		return ""
	}
	b, _ := io.ReadAll(bufio.NewReader(io.LimitReader(conn, 1<<20)))
	return string(b)
}

// dirBytes is the disk space the regular files under dir occupy (allocated
// blocks, so that sparse preallocated files such as Badger's count for what
// was written); files that vanish during the walk are skipped.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					total += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return total
}

// randomMarker is a random string of 16 lower-case letters and digits:
// 82 bits, which no file holds by chance.
func randomMarker(t testing.TB) string {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// grepTree reads every regular file under dir and returns "FILE: NEEDLE"
// for every needle found in its raw bytes, and for every needle found in
// a file or directory name under dir.
func grepTree(t testing.TB, dir string, needles []string) (hits []string, files int, total int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, n := range needles {
			if strings.Contains(rel, n) {
				hits = append(hits, fmt.Sprintf("name %s: %q", rel, n))
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		total += int64(len(data))
		lower := bytes.ToLower(data)
		for _, n := range needles {
			if bytes.Contains(lower, bytes.ToLower([]byte(n))) {
				hits = append(hits, fmt.Sprintf("content of %s: %q", rel, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return hits, files, total
}

// result is the outcome of a costor run started outside the test goroutine.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	err            error
	took           time.Duration
}

// runCtx runs costor like runWith but reports instead of failing the test,
// so that it may run in a goroutine of its own.
func runCtx(ctx context.Context, env []string, args ...string) result {
	cmd := exec.CommandContext(ctx, costorBin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: outBuf.String(), stderr: errBuf.String(), took: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.err = fmt.Errorf("did not finish: %w", ctx.Err())
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		r.err = err
	}
	return r
}

// requireFUSE skips a test without /dev/fuse, except under CI.
func requireFUSE(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs /dev/fuse and CI is set")
	}
	t.Skip("needs /dev/fuse")
}

// mustFail runs costor in s, expects exit 1 with a one-line error on
// stderr, and returns that line.
func mustFail(t testing.TB, s *sandbox, what string, args ...string) string {
	t.Helper()
	stdout, stderr, code := s.costor(args...)
	if code != 1 {
		t.Errorf("%s: costor %q exited %d, want 1 (refused)\nstdout: %.500s\nstderr: %s", what, args, code, stdout, stderr)
		return stderr
	}
	return oneLine(t, what, stderr)
}

// lyingProxy stands between a costor client and srv and rewrites the
// server's answer to GET /v1/whoami: the client then believes its token
// may do more than it may, and sends requests its own checks would have
// kept back. What the server does with them is its enforcement alone.
type lyingProxy struct {
	url, cacert string
}

func (srv *siteServer) lyingProxy(t testing.TB, lie map[string]any) *lyingProxy {
	t.Helper()
	dir := t.TempDir()
	cert := filepath.Join(dir, "proxy.pem")
	tlsCert := writeSelfSignedPair(t, cert)
	target, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = target.Host },
		Transport: srv.httpClient().Transport,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != "/v1/whoami" || resp.StatusCode != http.StatusOK {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			var who map[string]any
			if err := json.Unmarshal(body, &who); err != nil {
				return err
			}
			maps.Copy(who, lie)
			body, _ = json.Marshal(who)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{tlsCert}}}
	go func() { _ = hs.ServeTLS(l, "", "") }()
	t.Cleanup(func() { hs.Close() })
	return &lyingProxy{url: "https://" + l.Addr().String(), cacert: cert}
}

// through points client c at the proxy instead of the server.
func (p *lyingProxy) through(c *sandbox) *sandbox {
	c.vars["COSTOR_REPO"] = p.url
	c.vars["COSTOR_CACERT"] = p.cacert
	return c
}

// packBytes is the size of the files under a "packs" directory below dir
// (the server's repository), or of everything under dir if there is none.
func packBytes(dir string) int64 {
	var total int64
	found := false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "packs" {
			found = true
			total += dirBytes(p)
			return filepath.SkipDir
		}
		return nil
	})
	if !found {
		return dirBytes(dir)
	}
	return total
}

// agePacks sets the modification time of every file under a "packs"
// directory below dir to age ago.
func agePacks(t testing.TB, dir string, age time.Duration) {
	t.Helper()
	then := time.Now().Add(-age)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(p, string(filepath.Separator)+"packs"+string(filepath.Separator)) {
			n++
			return os.Chtimes(p, then, then)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no pack files under %s", dir)
	}
}
