package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/server/api"
)

// TestConcurrentAgents runs 20 agents backing up overlapping data at once:
// every one succeeds, shared blobs are stored once or a few times (racing
// uploads may both store a blob: harmless), and each reads its own blobs.
func TestConcurrentAgents(t *testing.T) {
	ts := startServer(t, t.TempDir())
	const agents = 20
	shared := make([]testBlob, 50)
	for i := range shared {
		shared[i] = newBlob(t, 4000)
	}
	tokens := make([]string, agents)
	for i := range tokens {
		tokens[i] = ts.token(api.RoleAgent, fmt.Sprintf("pc-%02d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]testBlob, 20)
			for j := range own {
				own[j] = newBlob(t, 3000)
			}
			all := append(append([]testBlob(nil), shared...), own...)
			status, body := post(ts, api.PathMissing, tokens[i], api.AppendIDs(nil, ids(all...)))
			if status != http.StatusOK {
				errs <- fmt.Errorf("agent %d: missing: %d %s", i, status, body)
				return
			}
			missing, _ := api.DecodeIDs(body, api.MaxIDs)
			want := map[id.ID]bool{}
			for _, m := range missing {
				want[m] = true
			}
			var send []testBlob
			for _, b := range all {
				if want[b.id] {
					send = append(send, b)
				}
			}
			for k := 0; k < len(send); k += 10 {
				if status, body := post(ts, api.PathBlobs, tokens[i], batch(send[k:min(k+10, len(send))]...)); status != http.StatusOK {
					errs <- fmt.Errorf("agent %d: upload: %d %s", i, status, body)
					return
				}
			}
			rec := record(t, fmt.Sprintf("pc-%02d", i), time.Now())
			if status, body := post(ts, api.PathSnapshots, tokens[i], commitBody(rec, ids(all...))); status != http.StatusCreated {
				errs <- fmt.Errorf("agent %d: commit: %d %s", i, status, body)
				return
			}
			for _, b := range []testBlob{shared[i], own[0]} {
				status, body := get(ts, api.PathBlob+b.id.String(), tokens[i])
				if status != http.StatusOK || !bytes.Equal(body, b.data) {
					errs <- fmt.Errorf("agent %d: read blob: %d", i, status)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var snaps []api.ObjectInfo
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"snapshots", ts.admin, nil), &snaps)
	if len(snaps) != agents {
		t.Errorf("%d snapshots, want %d", len(snaps), agents)
	}
}

// post and get are do without t.Fatal, for goroutines.
func post(ts *testServer, path, token string, body []byte) (int, []byte) {
	return send(ts, "POST", path, token, body)
}

func get(ts *testServer, path, token string) (int, []byte) { return send(ts, "GET", path, token, nil) }

func send(ts *testServer, method, path, token string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, "https://"+ts.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestBigCommit commits a snapshot whose ref list is far longer than one
// index chunk, with every blob repeated, and reads the list back.
func TestBigCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	const n = 3*refsChunk + 5
	blobs := make([]testBlob, n)
	for i := range blobs {
		data := []byte(fmt.Sprintf("blob %d", i))
		blobs[i] = testBlob{id: id.Hash(data), data: data}
	}
	for k := 0; k < n; k += 5000 {
		ts.want(http.StatusOK, "POST", api.PathBlobs, agent, batch(blobs[k:min(k+5000, n)]...))
	}
	refs := append(ids(blobs...), ids(blobs...)...)
	rec := record(t, "pc-01", time.Now())
	var res api.CommitResult
	json.Unmarshal(ts.want(http.StatusCreated, "POST", api.PathSnapshots, agent, commitBody(rec, refs)), &res)
	if res.Refs != n {
		t.Fatalf("commit counted %d refs, want %d", res.Refs, n)
	}
	got := ts.want(http.StatusOK, "GET", api.PathSnapshotRefsPrefix+res.ID+api.PathSnapshotRefsSuffix, agent, nil)
	if len(got) != n*id.Size {
		t.Fatalf("refs list of %d bytes, want %d", len(got), n*id.Size)
	}

	// Missing blobs beyond the report limit: at most maxCommitMissing listed,
	// and nothing committed.
	many := make([]id.ID, 2*maxCommitMissing)
	for i := range many {
		many[i] = id.Hash([]byte(fmt.Sprintf("absent %d", i)))
	}
	rec2 := record(t, "pc-01", time.Now().Add(time.Second))
	status, body, _ := ts.do("POST", api.PathSnapshots, agent, commitBody(rec2, append(ids(blobs[:10]...), many...)))
	var e api.Error
	if status != http.StatusConflict || json.Unmarshal(body, &e) != nil || len(e.Missing) != maxCommitMissing {
		t.Fatalf("commit with %d missing: %d, %d listed", len(many), status, len(e.Missing))
	}
	ts.want(http.StatusNotFound, "GET", api.PathSnapshotRefsPrefix+id.Hash(rec2).String()+api.PathSnapshotRefsSuffix, agent, nil)
}
