package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/server/api"
)

func TestFirstStartAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ts := startServer(t, dir)
	for _, name := range []string{"admin.token", "server.key", "tokens.json", "tls/key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	logs := ts.logs.String()
	for _, want := range []string{"admin.token", "cert.pem", "SHA256:", ts.addr} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, ts.admin) {
		t.Error("start-up log contains the admin token's secret")
	}

	var who api.Whoami
	if err := json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathWhoami, ts.admin, nil), &who); err != nil {
		t.Fatal(err)
	}
	if who.Role != api.RoleAdmin || who.RepositoryID == "" {
		t.Fatalf("whoami = %+v", who)
	}

	// The connection speaks HTTP/2 and presents the certificate Fingerprint names.
	req, _ := http.NewRequest("GET", "https://"+ts.addr+api.PathWhoami, nil)
	req.Header.Set("Authorization", "Bearer "+ts.admin)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	sum := sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)
	fp, err := Fingerprint(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil || fp != "SHA256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("Fingerprint = %q, %v; the server presents SHA256:%x", fp, err, sum)
	}

	var cfg repoConfig
	if err := json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"config/config", ts.admin, nil), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ID != who.RepositoryID || cfg.Version != 1 {
		t.Errorf("config %+v does not match whoami %+v", cfg, who)
	}

	tokBefore, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	certBefore, _ := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	ts.stop()
	ts2 := startServer(t, dir)
	tokAfter, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	certAfter, _ := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if !bytes.Equal(tokBefore, tokAfter) || !bytes.Equal(certBefore, certAfter) {
		t.Error("second start rewrote admin.token or the certificate")
	}
	if strings.Contains(ts2.logs.String(), "admin.token") {
		t.Error("second start logs an admin token as if it were new")
	}
	var who2 api.Whoami
	json.Unmarshal(ts2.want(http.StatusOK, "GET", api.PathWhoami, ts2.admin, nil), &who2)
	if who2.RepositoryID != who.RepositoryID {
		t.Errorf("repository ID changed across a restart: %s, then %s", who.RepositoryID, who2.RepositoryID)
	}
}

func TestAuthentication(t *testing.T) {
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	ts.want(http.StatusOK, "GET", api.PathWhoami, agent, nil)

	var list []api.Token
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathTokens, ts.admin, nil), &list)
	var agentID string
	for _, tk := range list {
		if tk.Role == api.RoleAgent {
			agentID = tk.ID
		}
	}
	if agentID == "" || !strings.Contains(agent, agentID) {
		t.Fatalf("token list %+v lacks the agent token", list)
	}
	ts.want(http.StatusOK, "DELETE", api.PathTokens+"/"+agentID, ts.admin, nil)

	bad := []struct{ name, token string }{
		{"none", ""},
		{"garbage", "hello"},
		{"right shape, unknown", "costor_0123456789abcdef_" + strings.Repeat("A", 43)},
		{"known id, wrong secret", agent[:len(agent)-1] + "x"},
		{"revoked", agent},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range []struct{ method, path string }{
				{"GET", api.PathWhoami},
				{"GET", api.PathObjects + "snapshots"},
				{"POST", api.PathMissing},
				{"GET", api.PathTokens},
			} {
				status, body, _ := ts.do(p.method, p.path, c.token, nil)
				var e api.Error
				if status != http.StatusUnauthorized || json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Errorf("%s %s: %d %s, want 401 with a JSON error", p.method, p.path, status, body)
				}
			}
		})
	}
	status, body, _ := ts.do("GET", api.PathWhoami, agent, nil)
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("revoked token: %d %s, want 401 saying revoked", status, body)
	}

	// Every refusal is in the audit log, at once.
	var entries []api.AuditEntry
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathAudit, ts.admin, nil), &entries)
	refused := 0
	for _, e := range entries {
		if e.Result == api.ResultRefused && e.Status == http.StatusUnauthorized {
			refused++
		}
	}
	if refused < len(bad)*4 {
		t.Errorf("audit log holds %d refused 401s, want at least %d", refused, len(bad)*4)
	}
}

func TestPlainHTTPFails(t *testing.T) {
	ts := startServer(t, t.TempDir())
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + ts.addr + api.PathWhoami)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP got status %d, want an error or 400", resp.StatusCode)
		}
	}
	// TLS below 1.2 is refused.
	conn, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// backupEnv is a server with one snapshot committed by agent pc-01.
type backupEnv struct {
	ts                       *testServer
	agentA, agentB           string
	readerA, readerAll, peer string
	blobs                    []testBlob
	snap                     id.ID
	record                   []byte
	envName                  string
}

func newBackupEnv(t *testing.T, ts *testServer) *backupEnv {
	e := &backupEnv{ts: ts}
	e.agentA = ts.token(api.RoleAgent, "pc-01")
	e.agentB = ts.token(api.RoleAgent, "pc-02")
	e.readerA = ts.token(api.RoleReader, "pc-01")
	e.readerAll = ts.token(api.RoleReader, "")
	e.peer = ts.token(api.RolePeer, "")

	env := envelope(t, "pc-01")
	e.envName = id.Hash(env).String()
	ts.want(http.StatusOK, "PUT", api.PathObjects+"hostkeys/"+e.envName, e.agentA, env)

	for range 5 {
		e.blobs = append(e.blobs, newBlob(t, 1000))
	}
	got := ts.want(http.StatusOK, "POST", api.PathMissing, e.agentA, api.AppendIDs(nil, ids(e.blobs...)))
	if missing, err := api.DecodeIDs(got, api.MaxIDs); err != nil || len(missing) != 5 {
		t.Fatalf("missing = %d IDs, %v; want all 5", len(missing), err)
	}
	ts.want(http.StatusOK, "POST", api.PathBlobs, e.agentA, batch(e.blobs[:3]...))

	e.record = record(t, "pc-01", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	e.snap = id.Hash(e.record)
	refs := append(ids(e.blobs...), e.blobs[0].id, e.blobs[1].id) // repeats count once
	status, body, _ := ts.do("POST", api.PathSnapshots, e.agentA, commitBody(e.record, refs))
	var conflict api.Error
	if status != http.StatusConflict || json.Unmarshal(body, &conflict) != nil {
		t.Fatalf("commit with missing blobs: %d %s, want 409", status, body)
	}
	slices.Sort(conflict.Missing)
	want := []string{e.blobs[3].id.String(), e.blobs[4].id.String()}
	slices.Sort(want)
	if !slices.Equal(conflict.Missing, want) {
		t.Fatalf("409 lists %v, want %v", conflict.Missing, want)
	}
	ts.want(http.StatusNotFound, "GET", api.PathObjects+"snapshots/"+e.snap.String(), ts.admin, nil)

	ts.want(http.StatusOK, "POST", api.PathBlobs, e.agentA, batch(e.blobs[2:]...))
	for range 2 { // the second commit of the same record changes nothing
		var res api.CommitResult
		if err := json.Unmarshal(ts.want(http.StatusCreated, "POST", api.PathSnapshots, e.agentA, commitBody(e.record, refs)), &res); err != nil {
			t.Fatal(err)
		}
		if res.ID != e.snap.String() || res.Refs != 5 {
			t.Fatalf("commit = %+v, want ID %s and 5 refs", res, e.snap)
		}
	}
	return e
}

func TestRolesAndBackup(t *testing.T) {
	ts := startServer(t, t.TempDir())
	e := newBackupEnv(t, ts)
	snapPath := api.PathObjects + "snapshots/" + e.snap.String()
	refsPath := api.PathSnapshotRefsPrefix + e.snap.String() + api.PathSnapshotRefsSuffix
	blobPath := api.PathBlob + e.blobs[0].id.String()
	envPath := api.PathObjects + "hostkeys/" + e.envName

	// What each may read.
	for _, c := range []struct {
		who   string
		token string
		ok    bool
	}{{"admin", ts.admin, true}, {"agent A", e.agentA, true}, {"reader A", e.readerA, true}, {"reader all", e.readerAll, true},
		{"agent B", e.agentB, false}, {"peer", e.peer, false}} {
		t.Run(c.who, func(t *testing.T) {
			for _, p := range []string{snapPath, refsPath, blobPath, envPath} {
				status, body, hdr := ts.do("GET", p, c.token, nil)
				switch {
				case c.ok && status != http.StatusOK:
					t.Errorf("GET %s: %d %s, want 200", p, status, body)
				case !c.ok && status != http.StatusForbidden:
					t.Errorf("GET %s: %d, want 403", p, status)
				case c.ok && p == blobPath && (!bytes.Equal(body, e.blobs[0].data) || hdr.Get(api.BlobTypeHeader) != "data"):
					t.Errorf("GET %s: wrong bytes or type %q", p, hdr.Get(api.BlobTypeHeader))
				case c.ok && p == refsPath:
					got, _ := api.DecodeIDs(body, 100)
					if len(got) != 5 {
						t.Errorf("refs: %d IDs, want 5", len(got))
					}
				case c.ok && p == snapPath && !bytes.Equal(body, e.record):
					t.Error("snapshot record bytes differ")
				}
			}
			var list []api.ObjectInfo
			status, body, _ := ts.do("GET", api.PathObjects+"snapshots", c.token, nil)
			json.Unmarshal(body, &list)
			sees := len(list) == 1 && list[0].Name == e.snap.String()
			if c.who == "peer" {
				if status != http.StatusForbidden {
					t.Errorf("peer lists snapshots: %d, want 403", status)
				}
			} else if sees != c.ok {
				t.Errorf("snapshot listing %v: sees A's snapshot %v, want %v", list, sees, c.ok)
			}
		})
	}

	// A range of an object.
	if got := ts.want(http.StatusOK, "GET", snapPath+"?offset=2&length=5", e.agentA, nil); !bytes.Equal(got, e.record[2:7]) {
		t.Errorf("range read = %q, want %q", got, e.record[2:7])
	}

	// What each must not do.
	otherRec := record(t, "pc-01", time.Now())
	for _, c := range []struct {
		name, method, path, token string
		body                      []byte
	}{
		{"agent B commits for pc-01", "POST", api.PathSnapshots, e.agentB, commitBody(otherRec, ids(e.blobs[0]))},
		{"reader commits", "POST", api.PathSnapshots, e.readerA, commitBody(otherRec, ids(e.blobs[0]))},
		{"agent B stores pc-01's envelope", "PUT", envPath, e.agentB, nil},
		{"agent forgets", "DELETE", snapPath, e.agentA, nil},
		{"reader forgets", "DELETE", snapPath, e.readerAll, nil},
		{"reader uploads", "POST", api.PathBlobs, e.readerAll, batch(newBlob(t, 10))},
		{"peer asks missing", "POST", api.PathMissing, e.peer, api.AppendIDs(nil, ids(e.blobs[0]))},
		{"peer uploads", "POST", api.PathBlobs, e.peer, batch(newBlob(t, 10))},
		{"agent creates token", "POST", api.PathTokens, e.agentA, []byte(`{"role":"admin"}`)},
		{"agent lists tokens", "GET", api.PathTokens, e.agentA, nil},
		{"reader revokes", "DELETE", api.PathTokens + "/0123456789abcdef", e.readerAll, nil},
		{"agent reads audit", "GET", api.PathAudit, e.agentA, nil},
		{"reader reads audit", "GET", api.PathAudit, e.readerAll, nil},
		{"agent prunes", "POST", api.PathPrune, e.agentA, nil},
		{"agent lists packs", "GET", api.PathObjects + "packs", e.agentA, nil},
		{"peer reads config", "GET", api.PathObjects + "config/config", e.peer, nil},
	} {
		body := c.body
		if c.name == "agent B stores pc-01's envelope" {
			body = envelope(t, "pc-01")
			c.path = api.PathObjects + "hostkeys/" + id.Hash(body).String()
		}
		if status, got, _ := ts.do(c.method, c.path, c.token, body); status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", c.name, status, got)
		}
	}
	// The peer replicates packs, opaque.
	var packs []api.ObjectInfo
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"packs", e.peer, nil), &packs)
	if len(packs) != 2 {
		t.Fatalf("peer sees %d packs, want 2", len(packs))
	}
	ts.want(http.StatusOK, "GET", api.PathObjects+"packs/"+packs[0].Name, e.peer, nil)

	// Agent B may read its own blob only after its own snapshot references it.
	ts.want(http.StatusForbidden, "GET", blobPath, e.agentB, nil)
	recB := record(t, "pc-02", time.Now())
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, e.agentB, commitBody(recB, ids(e.blobs[0])))
	ts.want(http.StatusOK, "GET", blobPath, e.agentB, nil)
	ts.want(http.StatusForbidden, "GET", api.PathBlob+e.blobs[1].id.String(), e.agentB, nil)

	// Refusals are audited with the token's name and host.
	var entries []api.AuditEntry
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathAudit, ts.admin, nil), &entries)
	found := false
	for _, en := range entries {
		if en.Action == "snapshot.forget" && en.Result == api.ResultRefused && en.Host == "pc-01" && en.Role == api.RoleAgent {
			found = true
		}
	}
	if !found {
		t.Error("the agent's refused forget is not in the audit log")
	}
}

func TestUploadVerifiesEveryBlob(t *testing.T) {
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	good, bad := newBlob(t, 100), newBlob(t, 100)
	bad.id[0] ^= 1
	status, body, _ := ts.do("POST", api.PathBlobs, agent, batch(good, bad))
	if status != http.StatusBadRequest || !strings.Contains(string(body), bad.id.String()) {
		t.Fatalf("upload with a wrong ID: %d %s, want 400 naming %s", status, body, bad.id.Short())
	}
	missing, _ := api.DecodeIDs(ts.want(http.StatusOK, "POST", api.PathMissing, agent, api.AppendIDs(nil, ids(good))), 10)
	if len(missing) != 1 {
		t.Error("the good blob of a rejected batch was stored")
	}
	var packs []api.ObjectInfo
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"packs", ts.admin, nil), &packs)
	if len(packs) != 0 {
		t.Errorf("a rejected batch left %d packs", len(packs))
	}
	// A tiny body declaring a huge blob is refused before anything is allocated.
	liar := batch(good)[:api.BatchOverhead]
	binary.BigEndian.PutUint32(liar[api.BatchOverhead-4:], 200<<20)
	if status, body, _ := ts.do("POST", api.PathBlobs, agent, liar); status != http.StatusBadRequest {
		t.Errorf("a 41-byte batch declaring 200 MiB: %d %s, want 400", status, body)
	}
	// Unknown blob type, truncation, trailing garbage: 400 with a JSON error.
	raw := batch(good)
	for name, b := range map[string][]byte{
		"bad type":  append([]byte{7}, raw[1:]...),
		"truncated": raw[:len(raw)-1],
		"header":    raw[:10],
	} {
		status, body, _ := ts.do("POST", api.PathBlobs, agent, b)
		var e api.Error
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil {
			t.Errorf("%s: %d %s, want 400 with JSON", name, status, body)
		}
	}
}

func TestLimitsAndRouting(t *testing.T) {
	ts := startServer(t, t.TempDir())
	agent := ts.token(api.RoleAgent, "pc-01")
	ts.want(http.StatusRequestEntityTooLarge, "POST", api.PathMissing, agent, make([]byte, api.MaxIDs*id.Size+id.Size))
	ts.want(http.StatusBadRequest, "POST", api.PathMissing, agent, make([]byte, 33))
	ts.want(http.StatusRequestEntityTooLarge, "POST", api.PathTokens, ts.admin, make([]byte, api.MaxJSONBody+1))
	ts.want(http.StatusBadRequest, "POST", api.PathTokens, ts.admin, []byte(`{"role":"agent"}`))
	ts.want(http.StatusBadRequest, "POST", api.PathTokens, ts.admin, []byte(`{"role":"root"}`))
	ts.want(http.StatusBadRequest, "POST", api.PathTokens, ts.admin, []byte(`{"role":`))
	ts.want(http.StatusNotFound, "GET", "/v1/nothing", agent, nil)
	ts.want(http.StatusNotFound, "GET", api.PathObjects+"keys", ts.admin, nil)
	ts.want(http.StatusMethodNotAllowed, "DELETE", api.PathBlobs, agent, nil)
	ts.want(http.StatusMethodNotAllowed, "PUT", api.PathObjects+"snapshots/"+strings.Repeat("a", 64), ts.admin, []byte("x"))
	ts.want(http.StatusBadRequest, "GET", api.PathBlob+"zz", agent, nil)
	ts.want(http.StatusBadRequest, "POST", api.PathSnapshots, agent, []byte{0, 0, 0, 3, 'a', 'b', 'c'})
	ts.want(http.StatusBadRequest, "POST", api.PathSnapshots, agent, []byte{0, 0})
	ts.want(http.StatusBadRequest, "GET", api.PathAudit+"?since=yesterday", ts.admin, nil)
	env := envelope(t, "pc-01")
	ts.want(http.StatusBadRequest, "PUT", api.PathObjects+"hostkeys/"+strings.Repeat("0", 64), agent, env)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	e := newBackupEnv(t, ts)
	ts.stop()
	ts = startServer(t, dir)
	for _, b := range e.blobs {
		if got := ts.want(http.StatusOK, "GET", api.PathBlob+b.id.String(), e.agentA, nil); !bytes.Equal(got, b.data) {
			t.Fatalf("blob %s differs after restart", b.id.Short())
		}
	}
	ts.want(http.StatusOK, "GET", api.PathObjects+"snapshots/"+e.snap.String(), e.readerA, nil)
	ts.want(http.StatusForbidden, "GET", api.PathBlob+e.blobs[0].id.String(), e.agentB, nil)
	missing, _ := api.DecodeIDs(ts.want(http.StatusOK, "POST", api.PathMissing, e.agentA, api.AppendIDs(nil, ids(e.blobs...))), 10)
	if len(missing) != 0 {
		t.Errorf("%d blobs missing after restart", len(missing))
	}
}

// TestReconcile loses half of each two-step write and restarts: refs
// without a record are dropped, packs without an index are indexed.
func TestReconcile(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	e := newBackupEnv(t, ts)
	ts.stop()

	// A forget that crashed after removing the record.
	if err := os.Remove(filepath.Join(dir, "repo", "snapshots", e.snap.String())); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, dir)
	ts.want(http.StatusForbidden, "GET", api.PathBlob+e.blobs[0].id.String(), e.agentA, nil)
	ts.want(http.StatusOK, "GET", api.PathBlob+e.blobs[0].id.String(), ts.admin, nil)
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, e.agentA, commitBody(e.record, ids(e.blobs...)))
	ts.stop()

	// An index lost entirely: packs are indexed again, but the refs cannot
	// be rebuilt, so prune must refuse rather than delete the blobs.
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, dir)
	for _, b := range e.blobs {
		ts.want(http.StatusOK, "GET", api.PathBlob+b.id.String(), ts.admin, nil)
	}
	status, body, _ := ts.do("POST", api.PathPrune, ts.admin, nil)
	if status != http.StatusConflict || !strings.Contains(string(body), e.snap.Short()) {
		t.Fatalf("prune with a record lacking refs: %d %s, want 409 naming %s", status, body, e.snap.Short())
	}
	// Forgetting it unblocks prune.
	ts.want(http.StatusOK, "DELETE", api.PathObjects+"snapshots/"+e.snap.String(), ts.admin, nil)
	ts.want(http.StatusOK, "POST", api.PathPrune, ts.admin, []byte(`{"dry_run":true}`))
}

func TestForgetAndPrune(t *testing.T) {
	ts := startServer(t, t.TempDir())
	e := newBackupEnv(t, ts)
	// A pack mostly of unreferenced bytes, with one small referenced blob.
	small, big := newBlob(t, 100), newBlob(t, 100_000)
	ts.want(http.StatusOK, "POST", api.PathBlobs, e.agentA, batch(small, big))
	rec2 := record(t, "pc-01", time.Now())
	ts.want(http.StatusCreated, "POST", api.PathSnapshots, e.agentA, commitBody(rec2, ids(small)))

	// Forget the first snapshot: its blobs are no longer referenced.
	ts.want(http.StatusOK, "DELETE", api.PathObjects+"snapshots/"+e.snap.String(), ts.admin, nil)
	ts.want(http.StatusNotFound, "GET", api.PathObjects+"snapshots/"+e.snap.String(), ts.admin, nil)
	ts.want(http.StatusNotFound, "GET", api.PathSnapshotRefsPrefix+e.snap.String()+api.PathSnapshotRefsSuffix, ts.admin, nil)
	ts.want(http.StatusForbidden, "GET", api.PathBlob+e.blobs[0].id.String(), e.agentA, nil)
	ts.want(http.StatusNotFound, "DELETE", api.PathObjects+"snapshots/"+e.snap.String(), ts.admin, nil)

	var dry, res api.PruneResult
	json.Unmarshal(ts.want(http.StatusOK, "POST", api.PathPrune, ts.admin, []byte(`{"dry_run":true}`)), &dry)
	if dry.PacksDeleted != 3 || dry.PacksWritten != 1 || dry.BlobsDeleted != 6 {
		t.Errorf("dry run = %+v, want 3 packs deleted, 1 written, 6 blobs", dry)
	}
	ts.want(http.StatusOK, "GET", api.PathBlob+e.blobs[0].id.String(), ts.admin, nil) // nothing deleted yet
	json.Unmarshal(ts.want(http.StatusOK, "POST", api.PathPrune, ts.admin, nil), &res)
	if res.PacksDeleted != 3 || res.PacksWritten != 1 || res.BlobsDeleted != 6 || res.BytesFreed < 100_000 {
		t.Errorf("prune = %+v, want 3 packs deleted, 1 written, 6 blobs, ≥100000 bytes", res)
	}
	for _, b := range append(e.blobs, big) {
		ts.want(http.StatusNotFound, "GET", api.PathBlob+b.id.String(), ts.admin, nil)
	}
	if got := ts.want(http.StatusOK, "GET", api.PathBlob+small.id.String(), e.agentA, nil); !bytes.Equal(got, small.data) {
		t.Error("the referenced blob changed in the repack")
	}
	var packs []api.ObjectInfo
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"packs", ts.admin, nil), &packs)
	if len(packs) != 1 {
		t.Errorf("%d packs left, want the 1 repacked", len(packs))
	}
	// A second prune finds nothing.
	var again api.PruneResult
	json.Unmarshal(ts.want(http.StatusOK, "POST", api.PathPrune, ts.admin, nil), &again)
	if again != (api.PruneResult{}) {
		t.Errorf("second prune = %+v, want nothing", again)
	}
}

func TestAuditChain(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	e := newBackupEnv(t, ts)
	ts.want(http.StatusOK, "GET", api.PathBlob+e.blobs[0].id.String(), e.agentA, nil)
	var entries []api.AuditEntry
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathAudit, ts.admin, nil), &entries)
	actions := map[string]bool{}
	for i, en := range entries {
		if en.Seq != uint64(i+1) || en.Hash == "" || en.Time.IsZero() || en.Token == "" {
			t.Fatalf("entry %d: %+v", i, en)
		}
		actions[en.Action] = true
	}
	for _, a := range []string{"token.create", "object.put", "blobs.missing", "blobs.upload", "snapshot.commit", "blob.get"} {
		if !actions[a] {
			t.Errorf("audit log lacks action %s (has %v)", a, actions)
		}
	}
	since := entries[len(entries)-1].Time.Format(time.RFC3339Nano)
	var recent []api.AuditEntry
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathAudit+"?since="+since, ts.admin, nil), &recent)
	if len(recent) == 0 || len(recent) >= len(entries) {
		t.Errorf("since filter returned %d of %d entries", len(recent), len(entries))
	}
	ts.stop()

	// Edit one line: the chain breaks there, and the server says where.
	path := filepath.Join(dir, "audit.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(data, []byte("\n"))
	lines[3] = bytes.Replace(lines[3], []byte(`"status":200`), []byte(`"status":201`), 1)
	if err := os.WriteFile(path, bytes.Join(lines, []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, dir)
	status, body, _ := ts.do("GET", api.PathAudit, ts.admin, nil)
	if status != http.StatusInternalServerError || !strings.Contains(string(body), "seq 4") {
		t.Fatalf("edited audit log: %d %s, want 500 naming seq 4", status, body)
	}
}

func TestAuditTornTail(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ts.token(api.RoleReader, "")
	ts.stop()
	f, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":2,"time":"20`)
	f.Close()
	ts = startServer(t, dir)
	var entries []api.AuditEntry
	json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathAudit, ts.admin, nil), &entries)
	if len(entries) != 1 {
		t.Fatalf("%d entries after a torn tail, want 1", len(entries))
	}
}

// TestReaderMissingQuery: a reader may ask which blobs are missing (costor
// check does), but a reader bound to a host learns nothing about blobs
// only other hosts reference: to it they are missing.
func TestReaderMissingQuery(t *testing.T) {
	ts := startServer(t, t.TempDir())
	e := newBackupEnv(t, ts)
	readerB := ts.token(api.RoleReader, "pc-02")
	committed := ids(e.blobs...)
	for _, c := range []struct {
		who         string
		token       string
		wantMissing int
	}{{"reader of pc-01", e.readerA, 0}, {"reader of all", e.readerAll, 0}, {"reader of pc-02", readerB, len(committed)}} {
		got := ts.want(http.StatusOK, "POST", api.PathMissing, c.token, api.AppendIDs(nil, committed))
		missing, err := api.DecodeIDs(got, api.MaxIDs)
		if err != nil || len(missing) != c.wantMissing {
			t.Errorf("%s: %d of %d missing (%v), want %d", c.who, len(missing), len(committed), err, c.wantMissing)
		}
	}
	ts.want(http.StatusForbidden, "POST", api.PathMissing, e.peer, api.AppendIDs(nil, committed))
}

// TestConcurrentUploadsStoreOnce: many agents sending the same blobs at
// the same moment store them once; every upload is still answered only
// once its blobs are durable.
func TestConcurrentUploadsStoreOnce(t *testing.T) {
	ts := startServer(t, t.TempDir())
	var blobs []testBlob
	unique := 0
	for range 16 {
		b := newBlob(t, 256<<10)
		blobs = append(blobs, b)
		unique += len(b.data)
	}
	body := batch(blobs...)
	const agents = 8
	tokens := make([]string, agents)
	for i := range tokens {
		tokens[i] = ts.token(api.RoleAgent, fmt.Sprintf("pc-%02d", i))
	}
	var wg sync.WaitGroup
	statuses := make([]int, agents)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = ts.do("POST", api.PathBlobs, tokens[i], body)
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("upload %d: status %d", i, st)
		}
	}
	got := ts.want(http.StatusOK, "POST", api.PathMissing, tokens[0], api.AppendIDs(nil, ids(blobs...)))
	if missing, _ := api.DecodeIDs(got, api.MaxIDs); len(missing) != 0 {
		t.Fatalf("%d blobs missing after every upload was answered 200", len(missing))
	}
	var packs []api.ObjectInfo
	if err := json.Unmarshal(ts.want(http.StatusOK, "GET", api.PathObjects+"packs", ts.admin, nil), &packs); err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range packs {
		stored += p.Size
	}
	if stored > int64(unique)*3/2 {
		t.Errorf("%d agents uploading %d bytes of the same blobs stored %d bytes in %d packs: copies were written", agents, unique, stored, len(packs))
	}
}
