package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/server/api"
)

func init() { pruneGrace = 0 } // tests prune what they just uploaded

// testServer is a real server started with Run on 127.0.0.1:0.
type testServer struct {
	t      *testing.T
	dir    string
	addr   string
	cancel context.CancelFunc
	done   chan error
	client *http.Client
	admin  string
	logs   *lockedWriter
}

func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	ts := &testServer{t: t, dir: dir, cancel: cancel, done: make(chan error, 1), logs: &lockedWriter{w: &bytes.Buffer{}}}
	logger := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		ts.done <- Run(ctx, Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: logger, Ready: func(a string) { ready <- a }})
	}()
	select {
	case ts.addr = <-ready:
	case err := <-ts.done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not get ready")
	}
	t.Cleanup(ts.stop)
	pemData, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("cert.pem holds no certificate")
	}
	ts.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}, Timeout: time.Minute}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ts.admin = strings.TrimSpace(string(tok))
	return ts
}

// stop cancels Run and waits for it; safe to call twice.
func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	ts.client.CloseIdleConnections()
	select {
	case err := <-ts.done:
		if err != nil {
			ts.t.Errorf("Run returned %v", err)
		}
	case <-time.After(time.Minute):
		ts.t.Error("Run did not return after cancel")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.(*bytes.Buffer).String()
}

// do sends a request and returns the status and body.
func (ts *testServer) do(method, path, token string, body []byte) (int, []byte, http.Header) {
	ts.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+ts.addr+path, r)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, data, resp.Header
}

// want sends a request and fails unless the status is status.
func (ts *testServer) want(status int, method, path, token string, body []byte) []byte {
	ts.t.Helper()
	got, data, _ := ts.do(method, path, token, body)
	if got != status {
		ts.t.Fatalf("%s %s: status %d (%s), want %d", method, path, got, bytes.TrimSpace(data), status)
	}
	return data
}

func (ts *testServer) token(role, host string) string {
	ts.t.Helper()
	body, _ := json.Marshal(api.TokenRequest{Role: role, Host: host})
	var created api.TokenCreated
	if err := json.Unmarshal(ts.want(http.StatusOK, "POST", api.PathTokens, ts.admin, body), &created); err != nil {
		ts.t.Fatal(err)
	}
	return created.Secret
}

type testBlob struct {
	typ  pack.BlobType
	id   id.ID
	data []byte
}

func newBlob(t *testing.T, size int) testBlob {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return testBlob{typ: pack.DataBlob, id: id.Hash(data), data: data}
}

func batch(blobs ...testBlob) []byte {
	var b []byte
	for _, x := range blobs {
		b = api.AppendBatchBlob(b, api.BatchBlob{Type: x.typ, ID: x.id, RawLength: uint32(len(x.data)), Data: x.data})
	}
	return b
}

func ids(blobs ...testBlob) []id.ID {
	out := make([]id.ID, len(blobs))
	for i, b := range blobs {
		out[i] = b.id
	}
	return out
}

func record(t *testing.T, host string, when time.Time) []byte {
	t.Helper()
	rec, err := snapshot.EncodePublic(&snapshot.Public{Version: snapshot.Version, Host: host, Time: when, Sealed: []byte("sealed details")})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func commitBody(rec []byte, refs []id.ID) []byte {
	return api.AppendIDs(api.AppendCommitHeader(nil, rec), refs)
}

func envelope(t *testing.T, host string) []byte {
	t.Helper()
	_, pub, err := crypto.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypto.NewHostEnvelope(host, key, pub)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
