package server

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/server/api"
)

// agePacks makes every pack file look written at when, as if prune's
// grace period had passed since the upload.
func agePacks(t *testing.T, dir string, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, "repo", "packs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A blob an in-progress backup was told is stored must survive a prune
// within the grace period, even when its pack is old and no committed
// snapshot references it: told by a missing answer, by an upload that
// found it stored, or because the snapshot it was reused from (the
// backup's parent) was forgotten.
func TestPruneKeepsBlobsToldStored(t *testing.T) {
	old := pruneGrace
	pruneGrace = time.Hour
	defer func() { pruneGrace = old }()
	dir := t.TempDir()
	ts := startServer(t, dir)
	agent := ts.token(api.RoleAgent, "pc-01")

	asked, resent, parent, untold := newBlob(t, 500), newBlob(t, 500), newBlob(t, 500), newBlob(t, 500)
	ts.want(http.StatusOK, "POST", api.PathBlobs, agent, batch(asked, resent, parent))
	ts.want(http.StatusOK, "POST", api.PathBlobs, agent, batch(untold))
	rec := record(t, "pc-01", time.Now())
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, agent, commitBody(rec, ids(parent)))
	agePacks(t, dir, time.Now().Add(-2*time.Hour))

	// A new backup starts: it asks about one blob, sends another again,
	// and reuses its parent's; then the admin forgets the parent.
	if got := ts.want(http.StatusOK, "POST", api.PathMissing, agent, api.AppendIDs(nil, ids(asked))); len(got) != 0 {
		t.Fatalf("missing answered %d bytes, want none", len(got))
	}
	ts.want(http.StatusOK, "POST", api.PathBlobs, agent, batch(resent))
	ts.want(http.StatusOK, "DELETE", api.PathObjects+"snapshots/"+idOf(rec), ts.admin, nil)

	var res api.PruneResult
	json.Unmarshal(ts.want(http.StatusOK, "POST", api.PathPrune, ts.admin, nil), &res)
	ts.want(http.StatusNotFound, "GET", api.PathBlob+untold.id.String(), ts.admin, nil) // prune did run
	rec2 := record(t, "pc-01", time.Now().Add(time.Minute))
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, agent, commitBody(rec2, ids(asked, resent, parent)))
	for _, b := range []testBlob{asked, resent, parent} {
		ts.want(http.StatusOK, "GET", api.PathBlob+b.id.String(), agent, nil)
	}
}

func idOf(rec []byte) string { return id.Hash(rec).String() }

// A client that sends its body slowly must not hold off a prune, and so
// (an RWMutex lets no reader in while a writer waits) every other agent.
func TestSlowBodyDoesNotBlockPrune(t *testing.T) {
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	stored := newBlob(t, 100)
	ts.want(http.StatusOK, "POST", api.PathBlobs, agent, batch(stored))
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, agent, commitBody(record(t, "pc-01", time.Now().Add(-time.Hour)), ids(stored)))

	for _, c := range []struct {
		name, path string
		body       []byte
	}{
		{"upload", api.PathBlobs, batch(newBlob(t, 1000), newBlob(t, 1000))},
		{"commit", api.PathSnapshots, commitBody(record(t, "pc-01", time.Now()), ids(stored, stored, stored))},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			req, err := http.NewRequest("POST", "https://"+ts.addr+c.path, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(c.body))
			req.Header.Set("Authorization", "Bearer "+agent)
			answered := make(chan int, 1)
			go func() {
				resp, err := ts.client.Do(req)
				if err != nil {
					answered <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			half := len(c.body) - 40
			if _, err := pw.Write(c.body[:half]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // the handler is reading the body

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			preq, _ := http.NewRequestWithContext(ctx, "POST", "https://"+ts.addr+api.PathPrune, nil)
			preq.Header.Set("Authorization", "Bearer "+ts.admin)
			resp, err := ts.client.Do(preq)
			if err != nil {
				pw.Close()
				t.Fatalf("prune while a %s body is half sent: %v", c.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("prune: status %d", resp.StatusCode)
			}
			if _, err := pw.Write(c.body[half:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if got := <-answered; got != http.StatusOK && got != http.StatusCreated {
				t.Errorf("%s finished with status %d", c.name, got)
			}
		})
	}
}

// Write attempts of roles that may not write are refusals (403, audited
// as refused), whatever kind they name.
func TestWriteAttemptsRefusedByRole(t *testing.T) {
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	reader := ts.token(api.RoleReader, "")
	peer := ts.token(api.RolePeer, "")
	name := "0000000000000000000000000000000000000000000000000000000000000000"
	for _, c := range []struct{ method, path, token string }{
		{"DELETE", api.PathObjects + "hostkeys/" + name, agent},
		{"DELETE", api.PathObjects + "config/config", agent},
		{"DELETE", api.PathObjects + "keys/" + name, agent},
		{"PUT", api.PathObjects + "snapshots/" + name, reader},
		{"PUT", api.PathObjects + "config/config", reader},
		{"PUT", api.PathObjects + "packs/" + name, peer},
	} {
		ts.want(http.StatusForbidden, c.method, c.path, c.token, []byte("x"))
	}
}
