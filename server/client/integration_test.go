package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server"
	"github.com/costor/costor/server/api"
	"github.com/costor/costor/server/client"
)

// site is a real server running in this process.
type site struct {
	url, dataDir, adminToken, certFile, fingerprint string
}

func startServer(t *testing.T) *site {
	t.Helper()
	s, stop := runServer(t, t.TempDir(), "127.0.0.1:0")
	t.Cleanup(stop)
	return s
}

// runServer runs a server on dir until stop is called.
func runServer(t *testing.T, dir, listen string) (s *site, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{DataDir: dir, Listen: listen, Ready: func(addr string) { ready <- addr }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server.Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server not ready after 30s")
	}
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "tls", "cert.pem")
	fp, err := server.Fingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return &site{url: "https://" + addr, dataDir: dir, adminToken: strings.TrimSpace(string(tok)), certFile: certFile, fingerprint: fp}, stop
}

func (s *site) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{URL: s.url, Token: token, CACertFile: s.certFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// token creates a token through the admin client and returns a client
// for it.
func (s *site) token(t *testing.T, admin *client.Client, role, host string) (*client.Client, api.TokenCreated) {
	t.Helper()
	tc, err := admin.CreateToken(context.Background(), api.TokenRequest{Role: role, Host: host, Name: role + "-" + host})
	if err != nil {
		t.Fatalf("CreateToken(%s %s): %v", role, host, err)
	}
	return s.client(t, tc.Secret), tc
}

// sealedBlobs makes n real sealed data chunks and one random tree blob.
func sealedBlobs(t *testing.T, n int) []repo.RemoteBlob {
	t.Helper()
	org, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	keyer := crypto.NewChunkKeyer(org)
	var out []repo.RemoteBlob
	for i := range n {
		plain := make([]byte, 1000+i*1013)
		rand.Read(plain)
		chunk, sealed, _ := repo.SealChunk(keyer, plain, nil, nil)
		out = append(out, repo.RemoteBlob{Type: pack.DataBlob, ID: chunk.ID, RawLength: chunk.Length, Data: bytes.Clone(sealed)})
	}
	tree := make([]byte, 4096)
	rand.Read(tree)
	out = append(out, repo.RemoteBlob{Type: pack.TreeBlob, ID: id.Hash(tree), RawLength: 4000, Data: tree})
	return out
}

func ids(blobs []repo.RemoteBlob) []id.ID {
	var out []id.ID
	for _, b := range blobs {
		out = append(out, b.ID)
	}
	return out
}

func record(t *testing.T, host string, when time.Time) []byte {
	t.Helper()
	rec, err := snapshot.EncodePublic(&snapshot.Public{
		Version: snapshot.Version, Host: host, Time: when, Tags: []string{"test"},
		Sealed: []byte("sealed details: opaque to the server"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func refsOf(list []id.ID) (io.Reader, int64) {
	b := api.AppendIDs(nil, list)
	return bytes.NewReader(b), int64(len(b))
}

func sortIDs(l []id.ID) []id.ID {
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(l)
}

func TestIntegrationTrust(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name        string
		cacert, pin string
		ok          bool
	}{
		{"cacert", s.certFile, "", true},
		{"fingerprint", "", s.fingerprint, true},
		{"fingerprint lower case with colons", "", "sha256:" + colons(strings.ToLower(strings.TrimPrefix(s.fingerprint, "SHA256:"))), true},
		{"wrong fingerprint", "", "SHA256:" + strings.Repeat("ab", 32), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.New(client.Options{URL: s.url, Token: s.adminToken, CACertFile: tt.cacert, Fingerprint: tt.pin})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w, err := c.Whoami(ctx)
			if tt.ok {
				if err != nil || w.Role != api.RoleAdmin || w.RepositoryID == "" {
					t.Fatalf("Whoami = %+v, %v", w, err)
				}
				return
			}
			if !errors.Is(err, client.ErrUntrusted) || !strings.Contains(err.Error(), "--tls-fingerprint") {
				t.Fatalf("Whoami = %v, want ErrUntrusted naming --tls-fingerprint", err)
			}
		})
	}
	if _, err := client.New(client.Options{URL: s.url, Token: s.adminToken}); err == nil ||
		!strings.Contains(err.Error(), "the server's certificate is not trusted: give --cacert FILE or --tls-fingerprint SHA256:…") {
		t.Errorf("New without trust = %v", err)
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestIntegrationTokens(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	agent, agentTok := s.token(t, admin, api.RoleAgent, "web1")
	w, err := agent.Whoami(ctx)
	if err != nil || w.Role != api.RoleAgent || w.Host != "web1" || w.TokenID != agentTok.ID {
		t.Fatalf("agent Whoami = %+v, %v (created %+v)", w, err, agentTok.Token)
	}
	if !strings.HasPrefix(agentTok.Secret, "costor_"+agentTok.ID+"_") {
		t.Errorf("secret %q does not have the costor_<id>_ form", agentTok.Secret)
	}
	list, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tok := range list {
		if tok.ID == agentTok.ID {
			found = tok.Role == api.RoleAgent && tok.Host == "web1" && tok.Revoked == nil
		}
	}
	if !found {
		t.Fatalf("ListTokens = %+v, want the agent token", list)
	}

	// An agent may not manage tokens; the message names its role.
	_, err = agent.ListTokens(ctx)
	if !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "the token's role (agent for host web1) may not list tokens") {
		t.Errorf("agent ListTokens = %v", err)
	}

	if err := admin.RevokeToken(ctx, agentTok.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	want := "token refused by " + s.url + ": it is missing, wrong or revoked (--token-file / COSTOR_TOKEN_FILE)"
	if _, err := agent.Whoami(ctx); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), want) {
		t.Errorf("revoked Whoami = %v, want %q", err, want)
	}
	wrong := s.client(t, "costor_0123456789abcdef_"+strings.Repeat("A", 43))
	if _, err := wrong.Whoami(ctx); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), want) {
		t.Errorf("wrong token Whoami = %v, want %q", err, want)
	}
	none := s.client(t, "")
	if _, err := none.Missing(ctx, []id.ID{{1}}); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("no token Missing = %v, want ErrUnauthorized", err)
	}
	if err := admin.RevokeToken(ctx, "0123456789abcdef"); err == nil {
		t.Errorf("RevokeToken of an unknown ID succeeded")
	}

	// Every one of those is in the audit log, refusals too.
	entries, err := admin.Audit(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	refused := 0
	for _, e := range entries {
		if e.Result == api.ResultRefused {
			refused++
		}
	}
	if refused < 4 {
		t.Errorf("Audit: %d refused entries of %d, want at least 4", refused, len(entries))
	}
	later, err := admin.Audit(ctx, time.Now().Add(time.Hour))
	if err != nil || len(later) != 0 {
		t.Errorf("Audit(since an hour ahead) = %d entries, %v", len(later), err)
	}
	if _, err := agent.Audit(ctx, time.Time{}); err == nil {
		t.Errorf("revoked agent read the audit log")
	}
}

func TestIntegrationBackup(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	web1, _ := s.token(t, admin, api.RoleAgent, "web1")
	web2, _ := s.token(t, admin, api.RoleAgent, "web2")
	reader1, _ := s.token(t, admin, api.RoleReader, "web1")
	readerAll, _ := s.token(t, admin, api.RoleReader, "")

	blobs := sealedBlobs(t, 5)
	all := ids(blobs)
	missing, err := web1.Missing(ctx, all)
	if err != nil || len(sortIDs(missing)) != len(all) {
		t.Fatalf("Missing before upload = %d of %d, %v", len(missing), len(all), err)
	}
	if err := web1.Upload(ctx, blobs[:3]); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if err := web1.Upload(ctx, blobs); err != nil { // again, idempotent
		t.Fatalf("second Upload: %v", err)
	}
	if missing, err := web1.Missing(ctx, all); err != nil || len(missing) != 0 {
		t.Fatalf("Missing after upload = %v, %v", missing, err)
	}
	// A reader of web1 may ask (costor check does), but before any
	// snapshot of web1 references them, every blob is missing to it.
	if missing, err := reader1.Missing(ctx, all); err != nil || len(missing) != len(all) {
		t.Errorf("reader of web1 Missing before any commit = %d of %d, %v; want all missing", len(missing), len(all), err)
	}
	if err := reader1.Upload(ctx, blobs[:1]); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("reader Upload = %v, want ErrForbidden", err)
	}

	// A blob whose bytes do not hash to its ID is refused, as a 4xx.
	bad := blobs[0]
	bad.Data = append(bytes.Clone(bad.Data), 0)
	if err := web1.Upload(ctx, []repo.RemoteBlob{bad}); err == nil {
		t.Errorf("Upload of a blob not matching its ID succeeded")
	}

	// No snapshot references them yet: only admin and reader-of-all read them.
	for i, b := range blobs {
		got, err := admin.LoadBlob(ctx, b.ID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("admin LoadBlob %d = %d bytes, %v", i, len(got), err)
		}
	}
	if got, err := readerAll.LoadBlob(ctx, all[0]); err != nil || !bytes.Equal(got, blobs[0].Data) {
		t.Errorf("reader-all LoadBlob = %d bytes, %v", len(got), err)
	}
	if _, err := web1.LoadBlob(ctx, all[0]); err == nil {
		t.Errorf("web1 read a blob no snapshot of web1 references")
	}
	if _, err := admin.LoadBlob(ctx, id.Hash([]byte("never uploaded"))); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("LoadBlob of an unknown blob = %v, want ErrNotExist", err)
	}

	// Commit: refs with repeats.
	rec := record(t, "web1", time.Now().UTC().Truncate(time.Second))
	snapID := id.Hash(rec)
	refs, n := refsOf(append(slices.Clone(all), all[0], all[1]))
	if err := web1.Commit(ctx, rec, refs, n); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	var got []id.ID
	if err := web1.Refs(ctx, snapID, func(b id.ID) error { got = append(got, b); return nil }); err != nil {
		t.Fatalf("Refs: %v", err)
	}
	if !slices.Equal(sortIDs(got), sortIDs(all)) {
		t.Errorf("Refs = %d IDs, want the %d committed", len(sortIDs(got)), len(all))
	}
	stop := errors.New("stop")
	calls := 0
	if err := web1.Refs(ctx, snapID, func(id.ID) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Refs with failing fn = %v after %d calls", err, calls)
	}
	if data, err := web1.LoadBlob(ctx, all[2]); err != nil || !bytes.Equal(data, blobs[2].Data) {
		t.Errorf("web1 LoadBlob after commit = %d bytes, %v", len(data), err)
	}
	if data, err := reader1.LoadBlob(ctx, all[2]); err != nil || !bytes.Equal(data, blobs[2].Data) {
		t.Errorf("reader of web1 LoadBlob after commit = %d bytes, %v", len(data), err)
	}
	if _, err := web2.LoadBlob(ctx, all[2]); err == nil {
		t.Errorf("web2 read a blob only web1 references")
	}
	if err := web2.Refs(ctx, snapID, func(id.ID) error { return nil }); err == nil {
		t.Errorf("web2 read the refs of web1's snapshot")
	}

	// Commit referencing a blob the server lacks.
	lacking := []id.ID{id.Hash([]byte("lacking 1")), id.Hash([]byte("lacking 2"))}
	rec2 := record(t, "web1", time.Now().UTC().Add(time.Minute).Truncate(time.Second))
	refs, n = refsOf(append(slices.Clone(all), lacking...))
	err = web1.Commit(ctx, rec2, refs, n)
	if !errors.Is(err, repo.ErrMissingBlobs) || !strings.Contains(err.Error(), "2 missing, first ") ||
		!strings.Contains(err.Error(), lacking[0].Short()) && !strings.Contains(err.Error(), lacking[1].Short()) {
		t.Errorf("Commit with lacking blobs = %v, want ErrMissingBlobs naming 2", err)
	}
	if _, err := web1.Storage().Stat(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: id.Hash(rec2).String()}); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("refused snapshot is stored: Stat = %v", err)
	}

	// An agent commits only for its own host.
	rec3 := record(t, "web2", time.Now().UTC().Truncate(time.Second))
	refs, n = refsOf(all[:1])
	if err := web1.Commit(ctx, rec3, refs, n); !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "agent for host web1") {
		t.Errorf("web1 committing for web2 = %v, want ErrForbidden naming the role", err)
	}

	// The record is an object each host sees only its own of.
	snapH := storage.Handle{Kind: storage.KindSnapshots, Name: snapID.String()}
	for name, c := range map[string]*client.Client{"web1": web1, "reader1": reader1, "readerAll": readerAll, "admin": admin} {
		names := listNames(t, c.Storage(), storage.KindSnapshots)
		if !slices.Equal(names, []string{snapID.String()}) {
			t.Errorf("%s lists snapshots %v, want [%s]", name, names, snapID)
		}
	}
	if names := listNames(t, web2.Storage(), storage.KindSnapshots); len(names) != 0 {
		t.Errorf("web2 lists snapshots %v, want none", names)
	}
	if _, err := web2.Storage().Stat(ctx, snapH); err == nil {
		t.Errorf("web2 can stat web1's snapshot")
	}
	info, err := web1.Storage().Stat(ctx, snapH)
	if err != nil || info.Size != int64(len(rec)) || info.Handle != snapH {
		t.Errorf("Stat = %+v, %v; want %d bytes", info, err, len(rec))
	}
	if data, err := load(web1.Storage(), snapH, 0, 0); err != nil || !bytes.Equal(data, rec) {
		t.Errorf("Load record = %q, %v", data, err)
	}
	testRangedLoad(t, web1.Storage(), snapH, rec)

	// Forget: never by an agent; by the admin, once.
	if err := web1.Storage().Remove(ctx, snapH); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("agent Remove = %v, want ErrForbidden", err)
	}
	if err := admin.Storage().Remove(ctx, snapH); err != nil {
		t.Fatalf("admin Remove: %v", err)
	}
	if _, err := admin.Storage().Stat(ctx, snapH); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat after Remove = %v, want ErrNotExist", err)
	}
	if err := admin.Storage().Remove(ctx, snapH); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("second Remove = %v, want ErrNotExist", err)
	}
	res, err := admin.Prune(ctx, api.PruneRequest{DryRun: true})
	if err != nil {
		t.Fatalf("Prune dry run: %v", err)
	}
	t.Logf("prune dry run: %+v", res)
	if _, err := web1.Prune(ctx, api.PruneRequest{DryRun: true}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("agent Prune = %v, want ErrForbidden", err)
	}
}

func listNames(t *testing.T, st storage.Storage, k storage.Kind) []string {
	t.Helper()
	var names []string
	err := st.List(context.Background(), k, func(info storage.Info) error {
		if info.Handle.Kind != k {
			return fmt.Errorf("listed %s", info.Handle)
		}
		names = append(names, info.Handle.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", k, err)
	}
	slices.Sort(names)
	return names
}

func load(st storage.Storage, h storage.Handle, offset, length int64) ([]byte, error) {
	var got []byte
	err := st.Load(context.Background(), h, offset, length, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

// testRangedLoad is storagetest's ranged-load table, on an object the
// server already holds.
func testRangedLoad(t *testing.T, st storage.Storage, h storage.Handle, data []byte) {
	n := int64(len(data))
	for _, tt := range []struct {
		offset, length int64
		ok             bool
	}{
		{0, 0, true}, {0, n, true}, {0, 1, true}, {10, 0, true}, {10, 5, true},
		{n - 1, 1, true}, {n - 1, 0, true}, {n, 0, true},
		{n, 1, false}, {n - 5, 10, false}, {n + 1, 0, false}, {0, n + 1, false}, {-1, 0, false}, {0, -1, false},
	} {
		t.Run(fmt.Sprintf("range %d+%d", tt.offset, tt.length), func(t *testing.T) {
			got, err := load(st, h, tt.offset, tt.length)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Load = %d bytes, nil error; want an error", len(got))
				}
				return
			}
			end := tt.offset + tt.length
			if tt.length == 0 {
				end = n
			}
			if err != nil || !bytes.Equal(got, data[tt.offset:end]) {
				t.Fatalf("Load = %d bytes, %v; want %d bytes", len(got), err, end-tt.offset)
			}
		})
	}
}

func TestIntegrationObjects(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	web1, _ := s.token(t, admin, api.RoleAgent, "web1")
	web2, _ := s.token(t, admin, api.RoleAgent, "web2")
	peer, _ := s.token(t, admin, api.RolePeer, "")
	st := web1.Storage()
	if st.Location() != s.url {
		t.Errorf("Location = %q, want %q", st.Location(), s.url)
	}

	// The config is readable by an agent.
	cfgH := storage.Handle{Kind: storage.KindConfig, Name: "config"}
	if cfg, err := load(st, cfgH, 0, 0); err != nil || len(cfg) == 0 {
		t.Errorf("Load config = %d bytes, %v", len(cfg), err)
	}
	if names := listNames(t, st, storage.KindConfig); !slices.Equal(names, []string{"config"}) {
		t.Errorf("List config = %v", names)
	}

	// Host envelopes: saved under SHA-256 of their bytes, idempotently.
	_, hostPub, err := crypto.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, recPub, _ := crypto.GenerateKeyPair()
	dataKey, _ := crypto.NewRandomKey()
	env, err := crypto.NewHostEnvelope("web1", dataKey, hostPub, recPub)
	if err != nil {
		t.Fatal(err)
	}
	envH := storage.Handle{Kind: storage.KindHostKeys, Name: id.Hash(env).String()}
	for range 2 {
		if err := st.Save(ctx, envH, bytes.NewReader(env), int64(len(env))); err != nil {
			t.Fatalf("Save envelope: %v", err)
		}
	}
	if got, err := load(st, envH, 0, 0); err != nil || !bytes.Equal(got, env) {
		t.Errorf("Load envelope = %d bytes, %v", len(got), err)
	}
	if info, err := st.Stat(ctx, envH); err != nil || info.Size != int64(len(env)) {
		t.Errorf("Stat envelope = %+v, %v", info, err)
	}
	if names := listNames(t, st, storage.KindHostKeys); !slices.Equal(names, []string{envH.Name}) {
		t.Errorf("web1 lists hostkeys %v", names)
	}
	if names := listNames(t, web2.Storage(), storage.KindHostKeys); len(names) != 0 {
		t.Errorf("web2 lists hostkeys %v, want none", names)
	}
	testRangedLoad(t, st, envH, env)

	// Saving another host's envelope, or under a wrong name, is refused.
	env2, _ := crypto.NewHostEnvelope("web2", dataKey, hostPub, recPub)
	env2H := storage.Handle{Kind: storage.KindHostKeys, Name: id.Hash(env2).String()}
	if err := st.Save(ctx, env2H, bytes.NewReader(env2), int64(len(env2))); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("web1 saving web2's envelope = %v, want ErrForbidden", err)
	}
	wrongH := storage.Handle{Kind: storage.KindHostKeys, Name: id.Hash([]byte("x")).String()}
	if err := st.Save(ctx, wrongH, bytes.NewReader(env), int64(len(env))); err == nil {
		t.Errorf("Save under a name that is not its hash succeeded")
	}
	// A short reader leaves nothing behind.
	if err := st.Save(ctx, env2H, bytes.NewReader(env2), int64(len(env2))+1); err == nil {
		t.Errorf("Save with a short reader succeeded")
	}
	if err := st.Remove(ctx, envH); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("agent removing an envelope = %v, want a refusal", err)
	}
	if err := admin.Storage().Remove(ctx, envH); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("admin removing an envelope = %v, want a refusal (envelopes are never deleted)", err)
	}

	// Missing objects, invalid handles, cancelled contexts.
	missH := storage.Handle{Kind: storage.KindHostKeys, Name: id.Hash([]byte("missing")).String()}
	if _, err := st.Stat(ctx, missH); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat missing = %v, want ErrNotExist", err)
	}
	called := false
	if err := st.Load(ctx, missH, 0, 0, func(io.Reader) error { called = true; return nil }); !errors.Is(err, storage.ErrNotExist) || called {
		t.Errorf("Load missing = %v (fn called %v), want ErrNotExist", err, called)
	}
	for _, h := range []storage.Handle{{Kind: storage.KindHostKeys, Name: "../x"}, {Kind: "bogus", Name: "x"}, {Kind: storage.KindHostKeys, Name: ".tmp"}} {
		if err := st.Save(ctx, h, bytes.NewReader(nil), 0); !errors.Is(err, storage.ErrInvalidHandle) {
			t.Errorf("Save(%s) = %v, want ErrInvalidHandle", h, err)
		}
		if _, err := st.Stat(ctx, h); !errors.Is(err, storage.ErrInvalidHandle) {
			t.Errorf("Stat(%s) = %v, want ErrInvalidHandle", h, err)
		}
	}
	if err := st.List(ctx, "bogus", func(storage.Info) error { return nil }); !errors.Is(err, storage.ErrInvalidHandle) {
		t.Errorf("List(bogus) = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Load(cctx, envH, 0, 0, func(io.Reader) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with cancelled ctx = %v", err)
	}
	if err := st.List(cctx, storage.KindHostKeys, func(storage.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with cancelled ctx = %v", err)
	}
	fnErr := errors.New("fn")
	if err := st.Load(ctx, envH, 0, 0, func(io.Reader) error { return fnErr }); !errors.Is(err, fnErr) {
		t.Errorf("Load = %v, want fn's error", err)
	}
	if err := st.List(ctx, storage.KindHostKeys, func(storage.Info) error { return fnErr }); !errors.Is(err, fnErr) {
		t.Errorf("List = %v, want fn's error", err)
	}

	// Concurrent readers over one connection pool.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if got, err := load(st, envH, 10, 100); err != nil || !bytes.Equal(got, env[10:110]) {
					t.Errorf("concurrent ranged Load = %d bytes, %v", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()

	// A peer sees packs only.
	if err := peer.Storage().List(ctx, storage.KindHostKeys, func(storage.Info) error { return nil }); err == nil {
		t.Errorf("peer listed hostkeys")
	}
}

func TestIntegrationLargeBatches(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	agent, _ := s.token(t, admin, api.RoleAgent, "web1")

	// More blobs than one batch may hold: Upload splits, Missing too.
	n := api.MaxBatchBlobs + 100
	blobs := make([]repo.RemoteBlob, n)
	for i := range blobs {
		data := fmt.Appendf(nil, "tiny blob %d", i)
		blobs[i] = repo.RemoteBlob{Type: pack.DataBlob, ID: id.Hash(data), RawLength: uint32(len(data)), Data: data}
	}
	if err := agent.Upload(ctx, blobs); err != nil {
		t.Fatalf("Upload of %d blobs: %v", n, err)
	}
	if missing, err := agent.Missing(ctx, ids(blobs)); err != nil || len(missing) != 0 {
		t.Fatalf("Missing = %d, %v", len(missing), err)
	}

	// Parallel uploads of 8 MiB batches share the connection.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent []repo.RemoteBlob
	for w := range 4 {
		wg.Go(func() {
			var batch []repo.RemoteBlob
			for i := range 8 {
				data := make([]byte, 1<<20)
				rand.Read(data)
				batch = append(batch, repo.RemoteBlob{Type: pack.DataBlob, ID: id.Hash(data), RawLength: uint32(len(data) + w + i), Data: data})
			}
			if err := agent.Upload(ctx, batch); err != nil {
				t.Errorf("parallel Upload: %v", err)
			}
			mu.Lock()
			sent = append(sent, batch...)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, b := range sent {
		got, err := admin.LoadBlob(ctx, b.ID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("LoadBlob %s = %d bytes, %v", b.ID.Short(), len(got), err)
		}
	}

	// A snapshot referencing all of them, refs streamed.
	refsList := ids(blobs)
	for _, b := range sent {
		refsList = append(refsList, b.ID)
	}
	rec := record(t, "web1", time.Now().UTC().Truncate(time.Second))
	refs, size := refsOf(refsList)
	if err := agent.Commit(ctx, rec, refs, size); err != nil {
		t.Fatalf("Commit of %d refs: %v", len(refsList), err)
	}
	count := 0
	if err := agent.Refs(ctx, id.Hash(rec), func(id.ID) error { count++; return nil }); err != nil || count != len(refsList) {
		t.Errorf("Refs = %d, %v; want %d", count, err, len(refsList))
	}
	if names := listNames(t, mustPeer(t, s, admin).Storage(), storage.KindPacks); len(names) == 0 {
		t.Errorf("peer lists no packs")
	}
}

func mustPeer(t *testing.T, s *site, admin *client.Client) *client.Client {
	c, _ := s.token(t, admin, api.RolePeer, "")
	return c
}

func TestIntegrationHTTP2(t *testing.T) {
	s := startServer(t)
	proto, err := client.Proto(context.Background(), s.client(t, s.adminToken))
	if err != nil || proto != "HTTP/2.0" {
		t.Fatalf("Proto = %q, %v; want HTTP/2.0", proto, err)
	}
}

func TestIntegrationServerRestart(t *testing.T) {
	dir := t.TempDir()
	s, stop := runServer(t, dir, "127.0.0.1:0")
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	agent, _ := s.token(t, admin, api.RoleAgent, "web1")
	blobs := sealedBlobs(t, 2)
	if err := agent.Upload(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(s.url, "https://")
	stop()

	// Down: the error names the address; retries end with ctx.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := agent.Missing(cctx, ids(blobs))
	cancel()
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Missing with the server down = %v, want an error naming %s", err, addr)
	}

	// Up again on the same address: the same client carries on, blobs
	// acknowledged before the restart are there.
	_, stop = runServer(t, dir, addr)
	defer stop()
	missing, err := agent.Missing(ctx, ids(blobs))
	if err != nil || len(missing) != 0 {
		t.Fatalf("Missing after restart = %v, %v", missing, err)
	}
	for _, b := range blobs {
		if got, err := admin.LoadBlob(ctx, b.ID); err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("LoadBlob after restart = %d bytes, %v", len(got), err)
		}
	}
}

func TestIntegrationLargeBlob(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	admin := s.client(t, s.adminToken)
	data := make([]byte, 48<<20)
	rand.Read(data)
	b := repo.RemoteBlob{Type: pack.TreeBlob, ID: id.Hash(data), RawLength: uint32(len(data)), Data: data}
	if err := admin.Upload(ctx, []repo.RemoteBlob{b}); err != nil {
		t.Fatalf("Upload 48 MiB: %v", err)
	}
	got, err := admin.LoadBlob(ctx, b.ID)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("LoadBlob = %d bytes, %v", len(got), err)
	}
	// Kinds the server does not serve list empty, and load as missing.
	for _, k := range []storage.Kind{storage.KindKeys, storage.KindLocks} {
		if names := listNames(t, admin.Storage(), k); len(names) != 0 {
			t.Errorf("List(%s) = %v", k, names)
		}
		if _, err := admin.Storage().Stat(ctx, storage.Handle{Kind: k, Name: "x"}); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%s/x) = %v, want ErrNotExist", k, err)
		}
	}
}
