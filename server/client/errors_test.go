package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// These tests use a fake server only for faults the real one does not
// produce on demand (5xx, stalls, garbage); behaviour is tested against
// the real server in integration_test.go.

func fakeClient(t *testing.T, h http.HandlerFunc, timeout time.Duration) *Client {
	t.Helper()
	cert := newTestCert(t, "127.0.0.1")
	ts := startTLS(t, cert, h)
	c, err := New(Options{URL: ts.URL, Token: "tok", Fingerprint: cert.fingerprint, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func writeError(w http.ResponseWriter, status int, e api.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func TestRetry(t *testing.T) {
	t.Parallel()
	ids := []id.ID{id.Hash([]byte("a")), id.Hash([]byte("b"))}
	for _, tt := range []struct {
		name      string
		failures  int
		status    int
		wantCalls int32
		wantErr   string
	}{
		{"503 then ok", 2, http.StatusServiceUnavailable, 3, ""},
		{"500 always", 100, http.StatusInternalServerError, attempts, "server failure 500"},
		{"400 never retried", 100, http.StatusBadRequest, 1, "the server refused the request"},
		{"413 never retried", 100, http.StatusRequestEntityTooLarge, 1, "larger than the server accepts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				body, _ := io.ReadAll(r.Body)
				if len(body) != 2*id.Size {
					t.Errorf("attempt %d: body of %d bytes", n, len(body))
				}
				if int(n) <= tt.failures {
					writeError(w, tt.status, api.Error{Error: "injected"})
					return
				}
				w.Write(ids[1][:])
			}, 0)
			got, err := c.Missing(context.Background(), ids)
			if calls.Load() != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tt.wantCalls)
			}
			if tt.wantErr == "" {
				if err != nil || len(got) != 1 || got[0] != ids[1] {
					t.Fatalf("Missing = %v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Missing = %v, want error with %q and the server's text", err, tt.wantErr)
			}
		})
	}
}

func TestRetryHonoursContext(t *testing.T) {
	t.Parallel()
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, api.Error{Error: "busy"})
	}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.LoadBlob(ctx, id.Hash(nil))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("LoadBlob = %v after %v, want DeadlineExceeded soon", err, time.Since(start))
	}
}

func TestStatusMessages(t *testing.T) {
	t.Parallel()
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == api.PathWhoami && r.Header.Get("Authorization") == "Bearer tok":
			json.NewEncoder(w).Encode(api.Whoami{Role: api.RoleAgent, Host: "web1", Name: "web1"})
		case r.URL.Path == api.PathTokens:
			writeError(w, http.StatusForbidden, api.Error{Error: "agents may not manage tokens"})
		case r.URL.Path == api.PathSnapshots:
			io.Copy(io.Discard, r.Body)
			var missing []string
			for i := range 1000 {
				missing = append(missing, id.Hash([]byte{byte(i), byte(i >> 8)}).String())
			}
			writeError(w, http.StatusConflict, api.Error{Error: "missing blobs", Missing: missing})
		case strings.HasPrefix(r.URL.Path, api.PathObjects):
			writeError(w, http.StatusNotFound, api.Error{Error: "no such object"})
		default:
			writeError(w, http.StatusUnauthorized, api.Error{Error: "revoked token"})
		}
	}, 0)
	ctx := context.Background()

	_, err := c.ListTokens(ctx)
	want := "refused to list tokens: the token's role (agent for host web1) may not list tokens (server: agents may not manage tokens)"
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.URL()) {
		t.Errorf("ListTokens = %v, want ErrForbidden saying %q", err, want)
	}

	_, err = c.Prune(ctx, api.PruneRequest{})
	want = "token refused by " + c.URL() + ": it is missing, wrong or revoked (--token-file / COSTOR_TOKEN_FILE) (server: revoked token)"
	if !errors.Is(err, ErrUnauthorized) || err.Error() != want {
		t.Errorf("Prune = %v, want %q", err, want)
	}

	err = c.Storage().Load(ctx, storage.Handle{Kind: storage.KindHostKeys, Name: "x"}, 0, 0, func(io.Reader) error {
		t.Error("fn called for a missing object")
		return nil
	})
	if !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Load = %v, want ErrNotExist", err)
	}

	rec := []byte(`{"version":1}`)
	refs := bytes.Repeat([]byte{1}, 64)
	err = c.Commit(ctx, rec, bytes.NewReader(refs), int64(len(refs)))
	if !errors.Is(err, repo.ErrMissingBlobs) || !strings.Contains(err.Error(), "at least 1000 missing, first ") {
		t.Errorf("Commit = %v, want ErrMissingBlobs with the count", err)
	}
}

func TestDefensiveDecoding(t *testing.T) {
	t.Parallel()
	asked := []id.ID{id.Hash([]byte("a"))}
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.PathWhoami:
			w.Write([]byte(`{"role": [`))
		case api.PathMissing:
			other := id.Hash([]byte("other"))
			w.Write(other[:])
		case api.PathTokens:
			w.Write(bytes.Repeat([]byte(" "), maxListBody+10))
		case api.PathBlob + asked[0].String():
			w.Header().Set("Content-Length", "300000000")
			w.WriteHeader(200)
		case api.PathObjects + "snapshots":
			w.Write([]byte(`[{"name":"../x","size":1}]`))
		default:
			w.Write(bytes.Repeat([]byte{7}, 33))
		}
	}, 0)
	ctx := context.Background()
	if _, err := c.Whoami(ctx); err == nil || !strings.Contains(err.Error(), "bad answer") {
		t.Errorf("Whoami = %v, want bad answer", err)
	}
	if _, err := c.Missing(ctx, asked); err == nil || !strings.Contains(err.Error(), "not asked about") {
		t.Errorf("Missing = %v, want not asked about", err)
	}
	if _, err := c.ListTokens(ctx); err == nil || !strings.Contains(err.Error(), "allowed") {
		t.Errorf("ListTokens = %v, want too long", err)
	}
	if _, err := c.LoadBlob(ctx, asked[0]); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("LoadBlob = %v, want too long", err)
	}
	err := c.Refs(ctx, asked[0], func(id.ID) error { return nil })
	if !errors.Is(err, api.ErrMalformed) {
		t.Errorf("Refs = %v, want malformed", err)
	}
	err = c.Storage().List(ctx, storage.KindSnapshots, func(storage.Info) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "bad answer") {
		t.Errorf("List = %v, want bad answer", err)
	}
}

func TestStall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	release := make(chan struct{})
	defer close(release)
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == api.PathWhoami {
			select { // no answer at all
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		// Half an answer, then silence.
		w.Write(make([]byte, 64))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 100*time.Millisecond)
	ctx := context.Background()
	_, err := c.Whoami(ctx)
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") || calls.Load() != attempts {
		t.Errorf("Whoami = %v after %d calls, want a timeout after %d", err, calls.Load(), attempts)
	}
	calls.Store(0)
	n := 0
	err = c.Refs(ctx, id.Hash(nil), func(id.ID) error {
		n++
		time.Sleep(200 * time.Millisecond) // time in fn does not count
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "sent nothing for 100ms") || n != 2 || calls.Load() != 1 {
		t.Errorf("Refs = %v after %d IDs, %d calls; want a stall after 2 IDs, not retried", err, n, calls.Load())
	}
}

func TestSaveShortReaderNotRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
	}, 0)
	data := []byte("envelope")
	h := storage.Handle{Kind: storage.KindHostKeys, Name: "e"}
	err := c.Storage().Save(context.Background(), h, bytes.NewReader(data), int64(len(data))+1)
	if !errors.Is(err, io.ErrUnexpectedEOF) || calls.Load() > 1 {
		t.Fatalf("Save with a short reader = %v after %d calls, want ErrUnexpectedEOF, not retried", err, calls.Load())
	}
}
