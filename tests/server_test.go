//go:build linux

package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
	"golang.org/x/sys/unix"
)

// Site server tests: every one runs a real `costor server` on 127.0.0.1
// and talks to it with the built binary (and, where a test checks that the
// server itself enforces a rule, with raw HTTPS requests that bypass the
// costor client's own checks).

// TestServerStart: what a first start leaves in the data directory, that a
// restart keeps the same identity, and the ways a client may pin it.
func TestServerStart(t *testing.T) {
	srv := startServer(t)
	tokFile := filepath.Join(srv.data, "admin.token")
	fi, err := os.Stat(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", tokFile, fi.Mode().Perm())
	}
	if !tokenPattern.MatchString(srv.adminToken) {
		t.Errorf("admin.token holds %q, not a costor_<16 hex>_<43 base64url> token", srv.adminToken)
	}
	if fi, err := os.Stat(filepath.Join(srv.data, "tls", "key.pem")); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("tls/key.pem: mode %v, readable by others", fi.Mode().Perm())
	}
	hexFP := strings.TrimPrefix(srv.fingerprint, "SHA256:")
	if log := strings.ToLower(strings.ReplaceAll(srv.log(), ":", "")); !strings.Contains(log, hexFP) {
		t.Errorf("the server's log does not show its certificate fingerprint %s:\n%s", srv.fingerprint, srv.log())
	}
	who := srv.request(t, http.MethodGet, "/v1/whoami", srv.adminToken, nil)
	if who.status != http.StatusOK || !strings.Contains(string(who.body), `"admin"`) {
		t.Errorf("GET /v1/whoami as admin: %d %s", who.status, who.body)
	}
	if who.proto != "HTTP/2.0" {
		t.Errorf("GET /v1/whoami answered over %s, want HTTP/2.0", who.proto)
	}

	admin := srv.client(t, srv.adminToken)
	toks := parseTokens(t, admin.mustCostor("--json", "token", "list"))
	if len(toks) != 1 || toks[0].Role != "admin" {
		t.Errorf("a fresh server's token list: %+v, want the one admin token", toks)
	}

	t.Run("fingerprint instead of cacert", func(t *testing.T) {
		upper := strings.ToUpper(hexFP)
		var colons []string
		for i := 0; i < len(upper); i += 2 {
			colons = append(colons, upper[i:i+2])
		}
		for _, fp := range []string{srv.fingerprint, "SHA256:" + strings.Join(colons, ":")} {
			c := srv.client(t, srv.adminToken)
			delete(c.vars, "COSTOR_CACERT")
			c.mustCostor("--tls-fingerprint", fp, "token", "list")
		}
	})

	t.Run("restart keeps token and certificate", func(t *testing.T) {
		fp, tok := srv.fingerprint, srv.adminToken
		how := srv.stop()
		t.Logf("server after SIGTERM: %s", how)
		srv.start()
		if srv.fingerprint != fp {
			t.Errorf("restart changed the certificate: %s → %s (every pinned client breaks)", fp, srv.fingerprint)
		}
		if srv.adminToken != tok {
			t.Error("restart rewrote admin.token")
		}
		admin.mustCostor("token", "list")
	})
}

// TestServerRoles probes every role against what it must not do, through
// the costor client and directly over HTTPS, and finds each refusal in the
// audit log.
func TestServerRoles(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	tok := map[string]string{}
	for _, tc := range []struct{ role, host, name string }{
		{"agent", "alpha", "alpha"},
		{"agent", "beta", "beta"},
		{"reader", "alpha", "reader-alpha"},
		{"reader", "", "reader-all"},
		{"peer", "", "peer"},
	} {
		tok[tc.name] = srv.createToken(t, tc.role, tc.host, tc.name)
	}
	alpha := srv.agent(t, tok["alpha"], keys)
	beta := srv.agent(t, tok["beta"], keys)
	srcA, srcB := alpha.path("src"), beta.path("src")
	writeFile(t, filepath.Join(srcA, "plans.txt"), "alpha's plans\n")
	writeFile(t, filepath.Join(srcB, "budget.txt"), "beta's budget, different from alpha's\n")
	alphaID := alpha.backupJSON("--host", "alpha", srcA).snapshotID(t)
	writeFile(t, filepath.Join(srcA, "more.txt"), "a second snapshot of alpha\n")
	alphaID2 := alpha.backupJSON("--host", "alpha", srcA).snapshotID(t)
	betaID := beta.backupJSON("--host", "beta", srcB).snapshotID(t)

	admin := srv.recoveryAdmin(t, keys)
	byID := map[string]snapshotJSON{}
	for _, sn := range admin.snapshots() {
		byID[sn.ID] = sn
	}
	for _, id := range []string{alphaID, alphaID2, betaID} {
		if _, ok := byID[id]; !ok {
			t.Fatalf("admin's snapshots does not list %s (lists %d)", id, len(byID))
		}
	}
	alphaTree, betaTree := byID[alphaID].Tree, byID[betaID].Tree
	hostsOf := func(snaps []snapshotJSON) map[string]int {
		m := map[string]int{}
		for _, sn := range snaps {
			m[sn.Host]++
		}
		return m
	}
	adminCounts := func() map[string]int { return hostsOf(admin.snapshots()) }
	if got := adminCounts(); got["alpha"] != 2 || got["beta"] != 1 {
		t.Fatalf("snapshots per host: %v, want alpha 2, beta 1", got)
	}
	ids := func(snaps []snapshotJSON) []string { return snapshotIDSet(snaps) }

	t.Run("agent reads its own host", func(t *testing.T) {
		got := ids(alpha.snapshots())
		if !slices.Equal(got, snapshotIDSet([]snapshotJSON{byID[alphaID], byID[alphaID2]})) {
			t.Errorf("agent alpha's snapshots: %q, want exactly alpha's two", got)
		}
		target := alpha.path("restore-own")
		alpha.mustCostor("restore", alphaID, "--target", target)
		if got := readFile(t, filepath.Join(target, srcA, "plans.txt")); got != "alpha's plans\n" {
			t.Errorf("restored plans.txt = %q", got)
		}
	})
	t.Run("agent cannot read another host", func(t *testing.T) {
		out, _, code := alpha.costor("--json", "snapshots", "--host", "beta")
		if code == 0 && len(parseSnapshots(t, out)) != 0 {
			t.Errorf("agent alpha lists beta's snapshots: %s", out)
		}
		mustFail(t, alpha, "agent alpha restores beta's snapshot", "restore", betaID, "--target", alpha.path("stolen"))
		mustFail(t, alpha, "agent alpha restores beta's latest", "restore", "latest", "--host", "beta", "--target", alpha.path("stolen2"))
		mustFail(t, alpha, "agent alpha lists beta's snapshot", "ls", betaID)
		mustFail(t, alpha, "agent alpha dumps from beta's snapshot", "dump", betaID+":"+filepath.Join(srcB, "budget.txt"))
		if exists(filepath.Join(alpha.path("stolen"), srcB, "budget.txt")) {
			t.Error("beta's file was restored by agent alpha")
		}
	})
	t.Run("agent cannot forget or prune", func(t *testing.T) {
		mustFail(t, alpha, "agent alpha forgets its own snapshot", "forget", alphaID)
		mustFail(t, alpha, "agent alpha forgets beta's snapshot", "forget", betaID)
		mustFail(t, alpha, "agent alpha applies a retention policy", "forget", "--keep-last", "1", "--host", "alpha")
		mustFail(t, alpha, "agent alpha prunes", "prune")
		if got := adminCounts(); got["alpha"] != 2 || got["beta"] != 1 {
			t.Errorf("after the agent's forget attempts: %v, want alpha 2, beta 1", got)
		}
	})
	t.Run("agent cannot back up as another host", func(t *testing.T) {
		mustFail(t, alpha, "agent alpha backs up as beta", "backup", "--host", "beta", srcA)
		if got := adminCounts(); got["beta"] != 1 {
			t.Errorf("after agent alpha's backup as beta: %v, want beta 1", got)
		}
	})
	t.Run("agent cannot manage tokens or read the audit", func(t *testing.T) {
		mustFail(t, alpha, "agent alpha lists tokens", "token", "list")
		mustFail(t, alpha, "agent alpha creates an admin token", "token", "create", "--role", "admin", "--name", "escalated")
		mustFail(t, alpha, "agent alpha reads the audit log", "audit")
		toks := parseTokens(t, srv.client(t, srv.adminToken).mustCostor("--json", "token", "list"))
		for _, tk := range toks {
			if tk.Name == "escalated" {
				t.Errorf("agent alpha created a token: %+v", tk)
			}
		}
	})
	readerA := srv.agent(t, tok["reader-alpha"], keys)
	readerA.vars["COSTOR_HOST_KEY_FILE"] = alpha.vars["COSTOR_HOST_KEY_FILE"] // alpha's machine
	t.Run("reader of one host", func(t *testing.T) {
		if got := ids(readerA.snapshots()); !slices.Equal(got, snapshotIDSet([]snapshotJSON{byID[alphaID], byID[alphaID2]})) {
			t.Errorf("reader(alpha) lists %q, want alpha's two snapshots", got)
		}
		target := readerA.path("restore")
		readerA.mustCostor("restore", alphaID, "--target", target)
		if got := readFile(t, filepath.Join(target, srcA, "plans.txt")); got != "alpha's plans\n" {
			t.Errorf("reader(alpha) restored plans.txt = %q", got)
		}
		mustFail(t, readerA, "reader(alpha) backs up", "backup", "--host", "alpha", srcA)
		mustFail(t, readerA, "reader(alpha) forgets", "forget", alphaID)
		mustFail(t, readerA, "reader(alpha) restores beta", "restore", betaID, "--target", readerA.path("stolen"))
		if got := adminCounts(); got["alpha"] != 2 {
			t.Errorf("after reader(alpha)'s attempts: %v, want alpha 2", got)
		}
	})
	t.Run("reader of all hosts", func(t *testing.T) {
		all := srv.client(t, tok["reader-all"])
		all.vars["COSTOR_RECOVERY_KEY_FILE"] = keys.recovery
		all.vars["COSTOR_PASSWORD"] = testPassword
		if got := hostsOf(all.snapshots()); got["alpha"] != 2 || got["beta"] != 1 {
			t.Errorf("reader(all) lists %v, want alpha 2, beta 1", got)
		}
		target := all.path("restore")
		all.mustCostor("restore", betaID, "--target", target)
		if got := readFile(t, filepath.Join(target, srcB, "budget.txt")); !strings.HasPrefix(got, "beta's budget") {
			t.Errorf("reader(all) restored budget.txt = %q", got)
		}
		mustFail(t, all, "reader(all) forgets", "forget", betaID)
		writer := srv.agent(t, tok["reader-all"], keys)
		mustFail(t, writer, "reader(all) backs up", "backup", "--host", "alpha", srcA)
	})
	t.Run("peer", func(t *testing.T) {
		peer := srv.agent(t, tok["peer"], keys)
		mustFail(t, peer, "peer backs up", "backup", "--host", "alpha", srcA)
		mustFail(t, peer, "peer lists snapshots", "snapshots")
		mustFail(t, peer, "peer restores", "restore", alphaID, "--target", peer.path("stolen"))
	})

	t.Run("no token", func(t *testing.T) {
		c := srv.agent(t, "", keys)
		delete(c.vars, "COSTOR_TOKEN")
		if msg := mustFail(t, c, "no token", "snapshots"); !strings.Contains(strings.ToLower(msg), "token") {
			t.Errorf("no token: error %q does not mention the token", msg)
		}
	})
	t.Run("garbage token", func(t *testing.T) {
		for _, garbage := range []string{"garbage", "costor_0123456789abcdef_" + strings.Repeat("A", 43), flipLast(tok["alpha"])} {
			c := srv.agent(t, garbage, keys)
			if msg := mustFail(t, c, "garbage token", "snapshots"); !strings.Contains(strings.ToLower(msg), "token") {
				t.Errorf("garbage token %.12s…: error %q does not mention the token", garbage, msg)
			}
			if p := srv.request(t, http.MethodGet, "/v1/whoami", garbage, nil); p.status != http.StatusUnauthorized {
				t.Errorf("GET /v1/whoami with a garbage token: %d, want 401", p.status)
			}
		}
	})
	var revokedAt time.Time
	var deletedName string // the snapshot object agent alpha tried to DELETE
	t.Run("revoked token", func(t *testing.T) {
		gammaTok := srv.createToken(t, "agent", "gamma", "gamma")
		gamma := srv.agent(t, gammaTok, keys)
		gammaSrc := gamma.path("src")
		writeFile(t, filepath.Join(gammaSrc, "f"), "gamma\n")
		gamma.mustCostor("backup", "--host", "gamma", gammaSrc)
		gamma.mustCostor("snapshots")
		adminC := srv.client(t, srv.adminToken)
		var gammaID string
		for _, tk := range parseTokens(t, adminC.mustCostor("--json", "token", "list")) {
			if tk.Name == "gamma" {
				gammaID = tk.ID
				if tk.Role != "agent" || tk.Host != "gamma" || tk.Created.IsZero() {
					t.Errorf("token list: gamma is %+v", tk)
				}
			}
		}
		if gammaID == "" {
			t.Fatal("token list does not show gamma")
		}
		if !strings.Contains(gammaTok, gammaID) {
			t.Errorf("token list id %q is not the id part of the token", gammaID)
		}
		revokedAt = time.Now()
		adminC.mustCostor("token", "revoke", gammaID)
		if msg := mustFail(t, gamma, "revoked token", "snapshots"); !strings.Contains(strings.ToLower(msg), "token") {
			t.Errorf("revoked token: error %q does not mention the token", msg)
		}
		if p := srv.request(t, http.MethodGet, "/v1/whoami", gammaTok, nil); p.status != http.StatusUnauthorized {
			t.Errorf("GET /v1/whoami with a revoked token: %d, want 401", p.status)
		}
	})
	t.Run("token file", func(t *testing.T) {
		c := srv.agent(t, "", keys)
		delete(c.vars, "COSTOR_TOKEN")
		c.vars["COSTOR_HOST_KEY_FILE"] = alpha.vars["COSTOR_HOST_KEY_FILE"]
		f := c.path("alpha.token")
		if err := os.WriteFile(f, []byte(tok["alpha"]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.mustCostor("--token-file", f, "snapshots")
		c.vars["COSTOR_TOKEN_FILE"] = f
		c.mustCostor("snapshots")
	})
	t.Run("plain HTTP", func(t *testing.T) {
		c := srv.agent(t, tok["alpha"], keys)
		c.vars["COSTOR_REPO"] = "http://" + srv.addr
		mustFail(t, c, "http:// repository", "snapshots")
		resp := rawHTTP(t, srv.addr, "GET /v1/whoami HTTP/1.1\r\nHost: "+srv.addr+"\r\nAuthorization: Bearer "+srv.adminToken+"\r\nConnection: close\r\n\r\n")
		first, _, _ := strings.Cut(resp, "\r\n")
		t.Logf("plain HTTP/1.1 to the TLS port answered %q", first)
		if strings.Contains(resp, "token_id") || strings.Contains(resp, "repository_id") ||
			strings.HasPrefix(first, "HTTP/1.1 2") || strings.HasPrefix(first, "HTTP/1.0 2") {
			t.Errorf("plain HTTP was served:\n%s", resp)
		}
		if srv.exited() {
			t.Fatalf("the server died of a plain HTTP request:\n%s", srv.log())
		}
	})
	t.Run("TLS pinning", func(t *testing.T) {
		c := srv.agent(t, tok["alpha"], keys)
		c.vars["COSTOR_HOST_KEY_FILE"] = alpha.vars["COSTOR_HOST_KEY_FILE"]
		delete(c.vars, "COSTOR_CACERT")
		mustFail(t, c, "neither --cacert nor --tls-fingerprint", "snapshots")
		mustFail(t, c, "wrong --tls-fingerprint", "--tls-fingerprint", "SHA256:"+strings.Repeat("ab", 32), "snapshots")
		other := c.path("other-ca.pem")
		writeSelfSigned(t, other)
		mustFail(t, c, "another certificate as --cacert", "--cacert", other, "snapshots")
		c.mustCostor("--tls-fingerprint", srv.fingerprint, "snapshots")
	})

	t.Run("server enforces roles on raw requests", func(t *testing.T) {
		alphaSnaps := srv.objectNames(t, "snapshots", tok["alpha"])
		betaSnaps := srv.objectNames(t, "snapshots", tok["beta"])
		allSnaps := srv.objectNames(t, "snapshots", srv.adminToken)
		if len(alphaSnaps) != 2 || len(betaSnaps) != 1 {
			t.Fatalf("snapshot objects seen by alpha %d, beta %d; want 2, 1", len(alphaSnaps), len(betaSnaps))
		}
		for _, n := range slices.Concat(alphaSnaps, betaSnaps) {
			if !slices.Contains(allSnaps, n) {
				t.Errorf("admin's listing of snapshot objects lacks %s", n)
			}
		}
		if slices.Contains(alphaSnaps, betaSnaps[0]) {
			t.Errorf("agent alpha's listing holds beta's snapshot %s", betaSnaps[0])
		}
		alphaKeys := srv.objectNames(t, "hostkeys", tok["alpha"])
		betaKeys := srv.objectNames(t, "hostkeys", tok["beta"])
		for _, k := range betaKeys {
			if slices.Contains(alphaKeys, k) {
				t.Errorf("agent alpha's hostkeys listing holds beta's envelope %s", k)
			}
		}
		type rq struct {
			who, method, path string
			body              []byte
			want              []int
		}
		notFound := []int{http.StatusForbidden, http.StatusNotFound}
		forbidden := []int{http.StatusForbidden}
		zeroID := make([]byte, 32)
		deletedName = alphaSnaps[0]
		probes := []rq{
			{"alpha", "GET", "/v1/objects/snapshots/" + betaSnaps[0], nil, notFound},
			{"alpha", "GET", "/v1/blobs/" + betaTree, nil, notFound},
			{"alpha", "GET", "/v1/snapshots/" + betaSnaps[0] + "/refs", nil, notFound},
			{"alpha", "DELETE", "/v1/objects/snapshots/" + alphaSnaps[0], nil, forbidden},
			{"alpha", "DELETE", "/v1/objects/snapshots/" + betaSnaps[0], nil, forbidden},
			{"alpha", "GET", "/v1/tokens", nil, forbidden},
			{"alpha", "POST", "/v1/tokens", []byte(`{"role":"admin","name":"escalated"}`), forbidden},
			{"alpha", "GET", "/v1/audit", nil, forbidden},
			{"alpha", "POST", "/v1/prune", []byte(`{"dry_run":true}`), forbidden},
			{"alpha", "GET", "/v1/objects/packs", nil, forbidden},
			{"reader-alpha", "POST", "/v1/blobs", nil, forbidden},
			{"reader-alpha", "POST", "/v1/snapshots", nil, forbidden},
			{"reader-alpha", "DELETE", "/v1/objects/snapshots/" + alphaSnaps[0], nil, forbidden},
			{"reader-alpha", "GET", "/v1/blobs/" + betaTree, nil, notFound},
			{"reader-all", "DELETE", "/v1/objects/snapshots/" + betaSnaps[0], nil, forbidden},
			{"peer", "GET", "/v1/objects/snapshots", nil, forbidden},
			{"peer", "GET", "/v1/objects/config", nil, forbidden},
			{"peer", "GET", "/v1/blobs/" + alphaTree, nil, forbidden},
			{"peer", "POST", "/v1/blobs/missing", zeroID, forbidden},
			{"peer", "GET", "/v1/objects/hostkeys", nil, forbidden},
			{"-", "GET", "/v1/objects/snapshots", nil, []int{http.StatusUnauthorized}},
			{"-", "GET", "/v1/blobs/" + alphaTree, nil, []int{http.StatusUnauthorized}},
		}
		for _, p := range probes {
			token := tok[p.who]
			got := srv.request(t, p.method, p.path, token, p.body)
			if !slices.Contains(p.want, got.status) {
				t.Errorf("%s %s as %s: %d %.200s, want %v", p.method, p.path, p.who, got.status, got.body, p.want)
				continue
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(got.body, &e); err != nil || e.Error == "" {
				t.Errorf("%s %s as %s: %d with body %.200q, want a JSON {\"error\": …}", p.method, p.path, p.who, got.status, got.body)
			}
		}
		// And what each may do, so that the refusals above are about roles.
		for _, p := range []rq{
			{"alpha", "GET", "/v1/blobs/" + alphaTree, nil, []int{200}},
			{"alpha", "GET", "/v1/objects/snapshots/" + alphaSnaps[0], nil, []int{200}},
			{"reader-all", "GET", "/v1/blobs/" + betaTree, nil, []int{200}},
			{"peer", "GET", "/v1/objects/packs", nil, []int{200}},
		} {
			if got := srv.request(t, p.method, p.path, tok[p.who], p.body); !slices.Contains(p.want, got.status) {
				t.Errorf("%s %s as %s: %d %.200s, want %v", p.method, p.path, p.who, got.status, got.body, p.want)
			}
		}
		if got := adminCounts(); got["alpha"] != 2 || got["beta"] != 1 {
			t.Errorf("after the raw probes: %v, want alpha 2, beta 1", got)
		}
		// A reader may be refused the missing query (docs/server.md) or
		// answered as if it saw its own host only: a blob of another host
		// is "missing" to reader(alpha), never "present".
		alphaBin, _ := hex.DecodeString(alphaTree)
		betaBin, _ := hex.DecodeString(betaTree)
		body := slices.Concat(alphaBin, betaBin)
		for _, who := range []string{"reader-alpha", "reader-all"} {
			got := srv.request(t, "POST", "/v1/blobs/missing", tok[who], body)
			switch {
			case got.status == http.StatusForbidden:
			case got.status == http.StatusOK:
				t.Logf("POST /v1/blobs/missing as %s is allowed (docs/server.md says readers may not query missing blobs)", who)
				hasA, hasB := bytes.Contains(got.body, alphaBin), bytes.Contains(got.body, betaBin)
				if hasA {
					t.Errorf("missing as %s reports alpha's root tree missing", who)
				}
				if who == "reader-alpha" && !hasB {
					t.Errorf("missing as reader(alpha) reports beta's root tree present: a reader learns what another host stored")
				}
			default:
				t.Errorf("POST /v1/blobs/missing as %s: %d %.200s", who, got.status, got.body)
			}
		}
	})

	// A client fooled into thinking its token may do more sends what the
	// costor client would otherwise keep back: the server alone refuses.
	t.Run("server refuses what a fooled client sends", func(t *testing.T) {
		asBeta := srv.lyingProxy(t, map[string]any{"host": "beta"}).through(srv.agent(t, tok["alpha"], keys))
		mustFail(t, asBeta, "agent alpha, told it is beta's agent, backs up as beta", "backup", "--host", "beta", srcA)
		asAdmin := srv.lyingProxy(t, map[string]any{"role": "admin", "host": ""}).through(srv.agent(t, tok["alpha"], keys))
		asAdmin.vars["COSTOR_HOST_KEY_FILE"] = alpha.vars["COSTOR_HOST_KEY_FILE"]
		mustFail(t, asAdmin, "agent alpha, told it is admin, forgets its snapshot", "forget", alphaID)
		mustFail(t, asAdmin, "agent alpha, told it is admin, lists tokens", "token", "list")
		mustFail(t, asAdmin, "agent alpha, told it is admin, reads the audit", "audit")
		mustFail(t, asAdmin, "agent alpha, told it is admin, creates a token", "token", "create", "--role", "admin", "--name", "escalated2")
		readerAsAgent := srv.lyingProxy(t, map[string]any{"role": "agent"}).through(srv.agent(t, tok["reader-alpha"], keys))
		readerAsAgent.vars["COSTOR_HOST_KEY_FILE"] = alpha.vars["COSTOR_HOST_KEY_FILE"]
		writeFile(t, filepath.Join(srcA, "new-for-reader.txt"), "a file the server never had\n")
		mustFail(t, readerAsAgent, "reader(alpha), told it is alpha's agent, backs up", "backup", "--host", "alpha", srcA)
		seesAll := srv.lyingProxy(t, map[string]any{"role": "reader", "host": ""}).through(srv.client(t, tok["alpha"]))
		seesAll.vars["COSTOR_RECOVERY_KEY_FILE"] = keys.recovery
		seesAll.vars["COSTOR_PASSWORD"] = testPassword
		if out, _, code := seesAll.costor("--json", "snapshots"); code == 0 {
			if got := hostsOf(parseSnapshots(t, out)); got["beta"] != 0 {
				t.Errorf("agent alpha, told it reads all hosts, lists beta's snapshots: %v", got)
			}
		}
		mustFail(t, seesAll, "agent alpha, told it reads all hosts, restores beta", "restore", betaID, "--target", seesAll.path("stolen"))
		if got := adminCounts(); got["alpha"] != 2 || got["beta"] != 1 {
			t.Errorf("after the fooled clients: %v, want alpha 2, beta 1", got)
		}
		for _, tk := range parseTokens(t, srv.client(t, srv.adminToken).mustCostor("--json", "token", "list")) {
			if tk.Name == "escalated2" {
				t.Errorf("agent alpha created a token through the proxy: %+v", tk)
			}
		}
	})

	t.Run("audit", func(t *testing.T) {
		adminC := srv.client(t, srv.adminToken)
		entries := parseAudit(t, adminC.mustCostor("--json", "audit"))
		if len(entries) == 0 {
			t.Fatal("the audit log is empty")
		}
		count := map[string]map[string]int{}
		for _, e := range entries {
			if count[e.Token] == nil {
				count[e.Token] = map[string]int{}
			}
			count[e.Token][e.Result]++
			if e.Action == "" || e.Time.IsZero() {
				t.Errorf("audit entry without action or time: %v", e)
			}
		}
		t.Logf("audit: %d entries; by token and result: %v", len(entries), count)
		for _, name := range []string{"alpha", "beta"} {
			if count[name]["allowed"] == 0 {
				t.Errorf("no allowed entry for token %q", name)
			}
		}
		for _, name := range []string{"alpha", "reader-alpha", "reader-all", "peer"} {
			if count[name]["refused"] == 0 {
				t.Errorf("no refused entry for token %q", name)
			}
		}
		find := func(what string, ok func(auditJSON) bool) {
			for _, e := range entries {
				if ok(e) {
					t.Logf("%s: %v", what, e)
					return
				}
			}
			t.Errorf("audit: no entry for %s", what)
		}
		find("alpha deleting its own snapshot, refused", func(e auditJSON) bool {
			return e.Token == "alpha" && e.Result == "refused" && deletedName != "" && strings.Contains(e.Target, deletedName)
		})
		find("alpha reading beta's tree, refused", func(e auditJSON) bool {
			return e.Token == "alpha" && e.Result == "refused" && strings.Contains(e.Target, betaTree)
		})
		find("alpha reading its own tree, allowed", func(e auditJSON) bool {
			return e.Token == "alpha" && e.Result == "allowed" && strings.Contains(e.Target, alphaTree)
		})
		find("a request without a valid token, refused", func(e auditJSON) bool {
			return e.Token == "-" && e.Result == "refused"
		})
		if !revokedAt.IsZero() {
			find("the revoked token, refused", func(e auditJSON) bool {
				return (e.Token == "gamma" || e.Token == "-") && e.Result == "refused" && !e.Time.Before(revokedAt.Add(-time.Second))
			})
		}
		find("agent alpha's host key envelope for beta (through the lying proxy), refused", func(e auditJSON) bool {
			return e.Token == "alpha" && e.Result == "refused" && e.Action == "object.put"
		})
		find("reader(alpha)'s upload (through the lying proxy), refused", func(e auditJSON) bool {
			return e.Token == "reader-alpha" && e.Result == "refused" && strings.HasPrefix(e.Action, "blobs.")
		})

		since := entries[len(entries)/2].Time
		later := parseAudit(t, adminC.mustCostor("--json", "audit", "--since", since.Format(time.RFC3339Nano)))
		if len(later) == 0 || len(later) >= len(entries) {
			t.Errorf("audit --since %v: %d entries of %d", since, len(later), len(entries))
		}
		for _, e := range later {
			if e.Time.Before(since.Add(-time.Second)) {
				t.Errorf("audit --since %v shows an older entry: %v", since, e)
				break
			}
		}
	})
}

// flipLast changes a token's last character: a token that is almost right.
func flipLast(tok string) string {
	last := tok[len(tok)-1]
	if last == 'A' {
		return tok[:len(tok)-1] + "B"
	}
	return tok[:len(tok)-1] + "A"
}

// writeSelfSigned writes a certificate for 127.0.0.1 that is not the
// server's.
func writeSelfSigned(t testing.TB, path string) {
	t.Helper()
	writeSelfSignedPair(t, path)
}

// writeSelfSignedPair writes a fresh self-signed certificate for 127.0.0.1
// to path and returns it with its key.
func writeSelfSignedPair(t testing.TB, path string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "impostor"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServerAuditTamperEvident: an edited line of DIR/audit.log is found
// when the log is read.
func TestServerAuditTamperEvident(t *testing.T) {
	srv := startServer(t)
	srv.createToken(t, "agent", "alpha", "alpha")
	srv.createToken(t, "reader", "", "reader")
	admin := srv.client(t, srv.adminToken)
	admin.mustCostor("token", "list")
	before := parseAudit(t, admin.mustCostor("--json", "audit"))
	if len(before) < 3 {
		t.Fatalf("audit: %d entries after three admin requests", len(before))
	}
	srv.stop()
	logFile := filepath.Join(srv.data, "audit.log")
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("the audit log is not at DIR/audit.log: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("audit.log holds %d lines", len(lines))
	}
	// Change the result of the second entry, keeping it valid JSON.
	victim := 1
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[victim]), &entry); err != nil {
		t.Fatalf("audit.log line %d is not JSON: %v", victim+1, err)
	}
	if entry["result"] == "allowed" {
		entry["result"] = "refused"
	} else {
		entry["result"] = "allowed"
	}
	edited, _ := json.Marshal(entry)
	lines[victim] = string(edited)
	if err := os.WriteFile(logFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.start()
	stdout, stderr, code := admin.costor("--json", "audit")
	low := strings.ToLower(stderr + stdout)
	flagged := false
	for _, word := range []string{"chain", "tamper", "broken", "mismatch", "invalid", "modified"} {
		if strings.Contains(low, word) {
			flagged = true
		}
	}
	if code == 0 && !flagged {
		t.Errorf("audit after an edit of entry %d: exit 0 and no word of it:\nstderr: %s", victim+1, stderr)
	}
	if !flagged {
		t.Errorf("audit after an edit: exit %d, but the message does not say the chain is broken: %q", code, stderr)
	}
}

// TestServerDataDirOpaque: after a backup of names and contents full of
// markers, no file of the server's data directory holds any of them.
func TestServerDataDirOpaque(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	m := make([]string, 14)
	for i := range m {
		m[i] = randomMarker(t)
	}
	root := alpha.path("src-" + m[0])
	files := map[string]string{
		m[1] + ".txt":                      strings.Repeat("the marker is "+m[2]+"\n", 200),
		filepath.Join("dir-"+m[3], "note"): m[4],
		m[10]:                              m[11],
	}
	for rel, content := range files {
		writeFile(t, filepath.Join(root, rel), content)
	}
	// 3 MiB of random bytes with a marker every 256 KiB.
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	for off := 1000; off+16 < len(big); off += 256 << 10 {
		copy(big[off:], m[5])
	}
	if err := os.WriteFile(filepath.Join(root, "dir-"+m[3], "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target-"+m[7], filepath.Join(root, "link-"+m[6])); err != nil {
		t.Fatal(err)
	}
	if treegen.XattrsSupported(root) {
		if err := unix.Setxattr(filepath.Join(root, m[10]), "user."+m[8], []byte(m[9]), 0); err != nil {
			t.Fatal(err)
		}
	}
	treeID := alpha.backupJSON("--host", "alpha", "--tag", "visible-tag", root).snapshotID(t)
	_, stderr, code := runWith(t, runOptions{
		env:   alpha.env(),
		args:  []string{"backup", "--host", "alpha", "--stdin", "--stdin-filename", m[12] + ".sql"},
		stdin: strings.NewReader(strings.Repeat("INSERT INTO t VALUES ('"+m[13]+"');\n", 100)),
	})
	if code != 0 {
		t.Fatalf("backup --stdin: exit %d: %s", code, stderr)
	}

	needles := slices.Clone(m)
	needles = append(needles, root)
	for _, mk := range m {
		needles = append(needles, hex.EncodeToString([]byte(mk)))
	}
	// The search itself works: a restore holds every marker.
	target := alpha.path("restore")
	alpha.mustCostor("restore", treeID, "--target", target)
	selfHits, _, _ := grepTree(t, target, m[:12])
	if len(selfHits) < 10 {
		t.Fatalf("the marker search finds only %d hits in a restore of the source: %q", len(selfHits), selfHits)
	}

	check := func(when string) {
		hits, n, total := grepTree(t, srv.data, needles)
		t.Logf("%s: searched %d files, %d bytes, under %s", when, n, total, srv.data)
		if total < 3<<20 {
			t.Errorf("%s: the data directory holds %d bytes: the backup's data is not there", when, total)
		}
		for _, h := range hits {
			t.Errorf("%s: the server's data directory reveals the backup: %s", when, h)
		}
		for _, nd := range needles {
			if strings.Contains(strings.ToLower(srv.log()), strings.ToLower(nd)) {
				t.Errorf("%s: the server's log shows %q", when, nd)
			}
		}
	}
	check("server running")
	srv.stop()
	check("server stopped")
}

// TestServerRecoveryRestore: the admin restores a host's snapshot with the
// recovery key alone (no organisation key, no host key), byte for byte.
func TestServerRecoveryRestore(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	src := alpha.path("src")
	generate(t, src, 42)
	want := alpha.path("want")
	generate(t, want, 42)
	id := alpha.backupJSON("--host", "alpha", src).snapshotID(t)

	admin := srv.recoveryAdmin(t, keys)
	var found bool
	for _, sn := range admin.snapshots("--host", "alpha") {
		if sn.ID == id {
			found = true
			if !slices.Equal(sn.Paths, []string{src}) {
				t.Errorf("admin sees paths %q, want [%q]", sn.Paths, src)
			}
		}
	}
	if !found {
		t.Fatalf("admin with the recovery key does not list %s", id)
	}
	target := admin.path("restore")
	admin.mustCostor("restore", id, "--target", target)
	treegen.Compare(t, want, filepath.Join(target, src), treegen.CompareOptions{ATime: true})

	one := admin.path("one")
	admin.mustCostor("restore", "latest:"+filepath.Join(src, treegen.PathLarge), "--host", "alpha", "--target", one)
	treegen.Compare(t, filepath.Join(want, treegen.PathLarge), filepath.Join(one, filepath.Base(treegen.PathLarge)), treegen.CompareOptions{})
	if out := admin.mustCostor("dump", id+":"+filepath.Join(src, treegen.PathSmall)); out != readFile(t, filepath.Join(want, treegen.PathSmall)) {
		t.Error("admin's dump differs from the file")
	}
	_ = filepath.WalkDir(admin.path("xdg-config"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), "host") {
			t.Errorf("a restore with the recovery key created %s", p)
		}
		return nil
	})

	t.Run("without keys", func(t *testing.T) {
		bare := srv.client(t, srv.adminToken)
		mustFail(t, bare, "admin restore without any key", "restore", id, "--target", bare.path("r"))
		if exists(filepath.Join(bare.path("r"), src, treegen.PathLarge)) {
			t.Error("a restore without keys wrote file contents")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		wrong := srv.recoveryAdmin(t, keys)
		wrong.vars["COSTOR_PASSWORD"] = "not the password"
		mustFail(t, wrong, "recovery key with a wrong password", "restore", id, "--target", wrong.path("r"))
	})
}

// TestServerDedupAcrossHosts: a second machine's identical data adds next
// to nothing, and still its token cannot read the first machine's snapshot.
func TestServerDedupAcrossHosts(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	beta := srv.agent(t, srv.createToken(t, "agent", "beta", "beta"), keys)
	srcA, srcB := alpha.path("data"), beta.path("data")
	for _, d := range []string{srcA, srcB} {
		if err := treegen.RandomFiles(d, 11, 8, 4<<20); err != nil { // 32 MiB, same bytes
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "notes", "readme.txt"), "identical on both machines\n")
	}
	total, _ := treeSize(t, srcA)

	sumA := alpha.backupJSON("--host", "alpha", srcA)
	addedA := sumA.count(t, keyBytesAdded)
	if addedA < total*9/10 {
		t.Errorf("first machine's backup added %d bytes of %d", addedA, total)
	}
	before := dirBytes(srv.data)
	sumB := beta.backupJSON("--host", "beta", srcB)
	addedB := sumB.count(t, keyBytesAdded)
	grew := dirBytes(srv.data) - before
	t.Logf("alpha added %d bytes; beta, with the same %d bytes of data, added %d (%.3f%%); the data dir grew by %d",
		addedA, total, addedB, 100*float64(addedB)/float64(total), grew)
	if addedB >= total/100 {
		t.Errorf("the second machine's identical data added %d bytes of %d (≥ 1%%): no dedup across machines", addedB, total)
	}
	if grew > int64(total)/10 {
		t.Errorf("the server's data directory grew by %d bytes for a second copy of %d bytes", grew, total)
	}

	admin := srv.recoveryAdmin(t, keys)
	snaps := map[string]snapshotJSON{}
	for _, sn := range admin.snapshots() {
		snaps[sn.Host] = sn
	}
	alphaSnap := snaps["alpha"]
	if alphaSnap.ID != sumA.snapshotID(t) {
		t.Fatalf("admin's snapshots: %v", snaps)
	}
	if alphaSnap.Tree == snaps["beta"].Tree {
		t.Errorf("alpha's and beta's root trees are the same blob %s: trees are not per host", alphaSnap.Tree)
	}
	if slices.Contains(snapshotIDSet(beta.snapshots()), alphaSnap.ID) {
		t.Error("beta lists alpha's snapshot")
	}
	mustFail(t, beta, "beta restores alpha's snapshot", "restore", alphaSnap.ID, "--target", beta.path("stolen"))
	mustFail(t, beta, "beta lists alpha's snapshot", "ls", alphaSnap.ID)
	if p := srv.request(t, http.MethodGet, "/v1/blobs/"+alphaSnap.Tree, tokenOf(beta), nil); p.status != http.StatusForbidden && p.status != http.StatusNotFound {
		t.Errorf("beta GET alpha's root tree: %d, want 403 or 404", p.status)
	}
	target := beta.path("restore")
	beta.mustCostor("restore", "latest", "--host", "beta", "--target", target)
	treegen.Compare(t, srcB, filepath.Join(target, srcB), treegen.CompareOptions{})
}

func tokenOf(s *sandbox) string { return s.vars["COSTOR_TOKEN"] }

// TestServerConcurrentAgents: 20 agents back up overlapping trees at once;
// all succeed, the repository checks, and the server's memory stays bounded.
func TestServerConcurrentAgents(t *testing.T) {
	const agents = 20
	const rssBound = 1 << 30
	srv := startServer(t)
	keys := newOrgKeys(t)
	work := tempDir(t)
	shared := filepath.Join(work, "shared")
	if err := treegen.RandomFiles(shared, 21, 4, 2<<20); err != nil { // 8 MiB every agent has
		t.Fatal(err)
	}
	type agentRun struct {
		host, src string
		box       *sandbox
		res       result
	}
	runs := make([]*agentRun, agents)
	var naive uint64
	for i := range runs {
		host := fmt.Sprintf("agent-%02d", i)
		src := filepath.Join(work, host)
		if err := treegen.RandomFiles(src, int64(100+i), 1, 1<<20); err != nil { // 1 MiB of its own
			t.Fatal(err)
		}
		for j := range 20 {
			writeFile(t, filepath.Join(src, "small", fmt.Sprintf("%02d.txt", j)), fmt.Sprintf("%s file %d\n", host, j))
		}
		runs[i] = &agentRun{host: host, src: src, box: srv.agent(t, srv.createToken(t, "agent", host, host), keys)}
		n, _ := treeSize(t, src)
		naive += n
	}
	sharedBytes, _ := treeSize(t, shared)
	naive += agents * sharedBytes

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() {
			r.res = runCtx(ctx, r.box.env(), "--json", "backup", "--host", r.host, shared, r.src)
		})
	}
	wg.Wait()
	took := time.Since(start)
	failed := 0
	for _, r := range runs {
		checkNoPanic(t, r.res.args, r.res.stderr)
		if r.res.err != nil || r.res.code != 0 {
			failed++
			t.Errorf("%s: backup exit %d, %v, after %v:%s", r.host, r.res.code, r.res.err, r.res.took.Round(time.Millisecond), indent(r.res.stderr))
		}
	}
	rss := srv.peakRSS()
	t.Logf("%d concurrent agents (%d bytes naive total, %d shared) done in %v; server peak RSS %d MiB; data dir %d MiB",
		agents, naive, sharedBytes, took.Round(time.Millisecond), rss>>20, dirBytes(srv.data)>>20)
	if rss == 0 {
		t.Error("could not read the server's VmHWM")
	} else if rss > rssBound {
		t.Errorf("server peak RSS %d MiB exceeds %d MiB", rss>>20, rssBound>>20)
	}
	if failed > 0 {
		t.FailNow()
	}
	var summaries []backupSummary
	for _, r := range runs {
		summaries = append(summaries, parseBackupJSON(t, r.res.stdout))
	}
	var added uint64
	for _, s := range summaries {
		added += s.count(t, keyBytesAdded)
	}
	unique := naive - (agents-1)*sharedBytes
	stored := packBytes(srv.data)
	t.Logf("bytes sent over all agents: %d; unique data: %d; pack files on the server: %d bytes", added, unique, stored)
	if stored > 2*int64(unique) {
		t.Errorf("the server holds %d bytes of packs for %d bytes of distinct data: concurrent agents' shared data is stored many times", stored, unique)
	}

	admin := srv.recoveryAdmin(t, keys)
	perHost := map[string]int{}
	for _, sn := range admin.snapshots() {
		perHost[sn.Host]++
	}
	for _, r := range runs {
		if perHost[r.host] != 1 {
			t.Errorf("host %s has %d snapshots, want 1", r.host, perHost[r.host])
		}
	}
	admin.mustCostor("check", "--read-data")
	pick := runs[7]
	target := admin.path("restore")
	admin.mustCostor("restore", "latest", "--host", pick.host, "--target", target)
	treegen.Compare(t, shared, filepath.Join(target, shared), treegen.CompareOptions{})
	treegen.Compare(t, pick.src, filepath.Join(target, pick.src), treegen.CompareOptions{})
}

// killMidUpload starts a backup of src by c and returns it once the
// server's data directory has grown by at least grow bytes, with how much
// it had grown.
func killMidUpload(t *testing.T, srv *siteServer, c *sandbox, host, src string, grow int64) (*background, int64) {
	t.Helper()
	base := dirBytes(srv.data)
	b := c.start("--json", "backup", "--host", host, src)
	deadline := time.Now().Add(2 * time.Minute)
	for dirBytes(srv.data)-base < grow {
		if b.exited() {
			t.Fatalf("the backup ended (%v) before the server's data grew by %d MiB (grew %d MiB):\n%s",
				b.cmd.ProcessState, grow>>20, (dirBytes(srv.data)-base)>>20, b.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's data grew by only %d MiB in 2 minutes", (dirBytes(srv.data)-base)>>20)
		}
		time.Sleep(2 * time.Millisecond)
	}
	grew := dirBytes(srv.data) - base
	t.Logf("data dir grew by %d MiB: killing now", grew>>20)
	return b, grew
}

// inFlight is how much of what the server's data directory grew by before
// a kill may not have been durable yet: the batches being received (a
// client has two uploads going, each of about 8 MiB plus at most one
// chunk of up to 8 MiB).
const inFlight = 32 << 20

// checkResent fails unless a rerun that added bytes of total re-sent at
// most what was not yet stored when the first run was killed.
func checkResent(t *testing.T, what string, added, total uint64, grew int64) {
	t.Helper()
	t.Logf("%s uploaded %d of %d bytes (%.0f%%); %d MiB had reached the server before the kill",
		what, added, total, 100*float64(added)/float64(total), grew>>20)
	if added >= total {
		t.Errorf("%s uploaded %d bytes of %d: nothing stored before the kill was reused", what, added, total)
	} else if limit := int64(total) - grew + inFlight; int64(added) > limit {
		t.Errorf("%s uploaded %d bytes, more than the %d the server lacked (+%d MiB in flight): it re-sent stored data",
			what, added, int64(total)-grew, inFlight>>20)
	}
}

// TestServerKill9: kill -9 of the server in the middle of an upload; after
// a restart on the same data directory the rerun succeeds, sends less than
// everything, and the repository checks and restores.
func TestServerKill9(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	src := alpha.path("src")
	if err := treegen.RandomFiles(src, 9, 50, 4<<20); err != nil { // 200 MiB
		t.Fatal(err)
	}
	total, _ := treeSize(t, src)
	b, grew := killMidUpload(t, srv, alpha, "alpha", src, 64<<20)
	srv.kill9()
	select {
	case <-b.done:
	case <-time.After(60 * time.Second):
		t.Errorf("the client was still running 60 s after the server died")
		b.kill(t)
	}
	code := b.cmd.ProcessState.ExitCode()
	t.Logf("client after the server's death: exit %d%s", code, indent(b.stderr.String()))
	if code == 0 {
		t.Errorf("backup exited 0 although the server was killed during its upload")
	}

	srv.start()
	sum := alpha.backupJSON("--host", "alpha", src)
	checkResent(t, "rerun after the server's kill -9", sum.count(t, keyBytesAdded), total, grew)
	admin := srv.recoveryAdmin(t, keys)
	if snaps := admin.snapshots(); len(snaps) != 1 {
		t.Errorf("%d snapshots after a killed and a finished backup, want 1", len(snaps))
	}
	admin.mustCostor("check", "--read-data")
	target := alpha.path("restore")
	alpha.mustCostor("restore", "latest", "--host", "alpha", "--target", target)
	treegen.Compare(t, src, filepath.Join(target, src), treegen.CompareOptions{})
}

// TestServerClientKilledResumes: kill -9 of the client mid-upload; the
// rerun succeeds and sends only what the server lacks.
func TestServerClientKilledResumes(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	src := alpha.path("src")
	if err := treegen.RandomFiles(src, 19, 32, 4<<20); err != nil { // 128 MiB
		t.Fatal(err)
	}
	total, _ := treeSize(t, src)
	b, grew := killMidUpload(t, srv, alpha, "alpha", src, 48<<20)
	if !b.kill(t) {
		t.Fatal("the backup finished before it could be killed")
	}
	sum := alpha.backupJSON("--host", "alpha", src)
	checkResent(t, "rerun after the client's kill -9", sum.count(t, keyBytesAdded), total, grew)
	if srv.exited() {
		t.Fatalf("server died:\n%s", srv.log())
	}
	admin := srv.recoveryAdmin(t, keys)
	admin.mustCostor("check", "--read-data")
	target := alpha.path("restore")
	alpha.mustCostor("restore", "latest", "--host", "alpha", "--target", target)
	treegen.Compare(t, src, filepath.Join(target, src), treegen.CompareOptions{})
}

// TestServerRestoreAndMount: restore, ls, dump, diff, versions and the
// FUSE mount through the server, compared byte for byte with the source.
func TestServerRestoreAndMount(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	src := alpha.path("src")
	generate(t, src, 7)
	want := alpha.path("want")
	generate(t, want, 7)
	hist := alpha.path("hist")
	config := filepath.Join(hist, "app.conf")
	contents := []string{"version A\n", "version B, longer\n"}
	var ids []string
	for _, c := range contents {
		writeFile(t, config, c)
		ids = append(ids, alpha.backupJSON("--host", "alpha", src, hist).snapshotID(t))
	}

	t.Run("restore latest", func(t *testing.T) {
		target := alpha.path("restore")
		alpha.mustCostor("restore", "latest", "--host", "alpha", "--target", target)
		treegen.Compare(t, want, filepath.Join(target, src), treegen.CompareOptions{})
		if got := readFile(t, filepath.Join(target, config)); got != contents[1] {
			t.Errorf("restored app.conf = %q, want %q", got, contents[1])
		}
	})
	t.Run("ls dump diff versions", func(t *testing.T) {
		if out := alpha.mustCostor("ls", "latest:"+hist, "--host", "alpha"); !strings.Contains(out, "app.conf") {
			t.Errorf("ls latest:%s does not show app.conf:\n%s", hist, out)
		}
		if out := alpha.mustCostor("dump", "latest:"+filepath.Join(src, treegen.PathLarge), "--host", "alpha"); out != readFile(t, filepath.Join(want, treegen.PathLarge)) {
			t.Errorf("dump of %s: %d bytes that differ from the file", treegen.PathLarge, len(out))
		}
		if out := alpha.mustCostor("diff", ids[0], ids[1]); !strings.Contains(out, "app.conf") || strings.Contains(out, treegen.PathLarge) {
			t.Errorf("diff of the two snapshots:\n%s", out)
		}
		var rows []struct {
			SnapshotID string `json:"snapshot_id"`
			Size       uint64 `json:"size"`
		}
		out := alpha.mustCostor("--json", "versions", config, "--host", "alpha")
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("versions --json: %v\n%s", err, out)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Size < rows[j].Size })
		if len(rows) != 2 || rows[0].SnapshotID != ids[0] || rows[1].SnapshotID != ids[1] ||
			rows[0].Size != uint64(len(contents[0])) || rows[1].Size != uint64(len(contents[1])) {
			t.Errorf("versions of %s: %s", config, out)
		}
	})
	t.Run("mount", func(t *testing.T) {
		requireFUSE(t)
		m := alpha.startMount(t, "--host", "alpha")
		mounted := filepath.Join(m.dir, "hosts", "alpha", "latest", src)
		treegen.Compare(t, want, mounted, treegen.CompareOptions{
			Skip: func(rel string) bool { return rel == "sparse" },
		})
		for _, rel := range []string{treegen.PathSparse, treegen.PathTailHole, treegen.PathLarge} {
			if sha256File(t, filepath.Join(mounted, rel)) != sha256File(t, filepath.Join(want, rel)) {
				t.Errorf("%s: content differs through the mount", rel)
			}
		}
		names := snapshotDirNames(alpha.snapshots())
		dir := filepath.Join(m.dir, "history", "alpha", config)
		wantNames := []string{names[ids[0]] + "_app.conf", names[ids[1]] + "_app.conf"}
		slices.Sort(wantNames)
		if got := listNames(t, dir); !slices.Equal(got, wantNames) {
			t.Errorf("history of %s: %q, want %q", config, got, wantNames)
		} else {
			for i, c := range contents {
				if got := readFile(t, filepath.Join(dir, names[ids[i]]+"_app.conf")); got != c {
					t.Errorf("history version %d = %q, want %q", i, got, c)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(mounted, treegen.PathSmall), []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("write through the mount: %v, want EROFS", err)
		}

		// A snapshot taken while mounted appears without remounting.
		writeFile(t, config, "version C\n")
		id3 := alpha.backupJSON("--host", "alpha", hist).snapshotID(t)
		deadline := time.Now().Add(15 * time.Second)
		for len(listNames(t, dir)) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("history of %s still lists %q 15 s after snapshot %s", config, listNames(t, dir), id3)
			}
			time.Sleep(200 * time.Millisecond)
		}
		m.stopWith(t, m.signal(syscall.SIGTERM))
	})
}

// TestServerMalformedRequests: bad bodies get a clear 4xx, never a 5xx or
// a success, and a blob whose bytes do not hash to its ID is not stored.
func TestServerMalformedRequests(t *testing.T) {
	srv := startServer(t)
	tok := srv.createToken(t, "agent", "alpha", "alpha")
	blobHeader := func(typ byte, id [32]byte, raw, length uint32) []byte {
		b := []byte{typ}
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, raw)
		return binary.BigEndian.AppendUint32(b, length)
	}
	payload := []byte("these bytes are not what the ID says")
	claimed := sha256.Sum256([]byte("something else entirely"))
	poisoned := append(blobHeader(0, claimed, uint32(len(payload)), uint32(len(payload))), payload...)
	for _, tc := range []struct {
		name, method, path, token string
		body                      []byte
	}{
		{"missing: not a multiple of 32", "POST", "/v1/blobs/missing", tok, make([]byte, 33)},
		{"missing: too many IDs", "POST", "/v1/blobs/missing", tok, make([]byte, 32*(1<<16+1))},
		{"blobs: truncated header", "POST", "/v1/blobs", tok, make([]byte, 10)},
		{"blobs: unknown type", "POST", "/v1/blobs", tok, append(blobHeader(7, claimed, 4, 4), "abcd"...)},
		{"blobs: length beyond the body", "POST", "/v1/blobs", tok, append(blobHeader(0, claimed, 4, 1000), "abcd"...)},
		{"blobs: ID is not the hash", "POST", "/v1/blobs", tok, poisoned},
		{"snapshots: garbage", "POST", "/v1/snapshots", tok, []byte("not a commit at all")},
		{"snapshots: empty", "POST", "/v1/snapshots", tok, nil},
		{"blob: not hex", "GET", "/v1/blobs/not-hex", tok, nil},
		{"objects: unknown kind", "GET", "/v1/objects/no-such-kind", tok, nil},
		{"hostkeys: garbage envelope", "PUT", "/v1/objects/hostkeys/" + strings.Repeat("0", 64), tok, []byte("garbage")},
		{"tokens: bad JSON", "POST", "/v1/tokens", srv.adminToken, []byte("{")},
		{"tokens: unknown role", "POST", "/v1/tokens", srv.adminToken, []byte(`{"role":"wizard","name":"w"}`)},
		{"audit: bad since", "GET", "/v1/audit?since=yesterday-ish", srv.adminToken, nil},
	} {
		p := srv.request(t, tc.method, tc.path, tc.token, tc.body)
		if p.status < 400 || p.status > 499 {
			t.Errorf("%s: %s %s → %d %.200s, want a 4xx", tc.name, tc.method, tc.path, p.status, p.body)
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(p.body, &e); err != nil || e.Error == "" {
			t.Errorf("%s: %d with body %.200q, want a JSON {\"error\": …}", tc.name, p.status, p.body)
		} else {
			t.Logf("%s: %d %s", tc.name, p.status, e.Error)
		}
	}
	p := srv.request(t, "POST", "/v1/blobs/missing", tok, claimed[:])
	if p.status != http.StatusOK {
		t.Fatalf("missing of the poisoned ID: %d %s", p.status, p.body)
	}
	if !strings.Contains(string(p.body), string(claimed[:])) && !strings.Contains(string(p.body), hex.EncodeToString(claimed[:])) {
		t.Errorf("after a batch whose blob does not hash to its ID, the server no longer lists that ID as missing: it stored it")
	}
	if srv.exited() {
		t.Fatalf("server died:\n%s", srv.log())
	}
}

// TestServerForgetPrune: the admin forgets snapshots through the server
// (by ID and by policy) and prunes; what is kept still checks and
// restores, and what is forgotten is gone for the agent.
func TestServerForgetPrune(t *testing.T) {
	srv := startServer(t)
	keys := newOrgKeys(t)
	alpha := srv.agent(t, srv.createToken(t, "agent", "alpha", "alpha"), keys)
	src := alpha.path("src")
	var ids []string
	for i := range 3 {
		dir := filepath.Join(src, "gen")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := treegen.RandomFiles(dir, int64(40+i), 4, 4<<20); err != nil { // 16 MiB new each time
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, "stable.txt"), "in every snapshot\n")
		ids = append(ids, alpha.backupJSON("--host", "alpha", src).snapshotID(t))
		time.Sleep(1100 * time.Millisecond) // distinct snapshot times for the policy
	}
	admin := srv.recoveryAdmin(t, keys)
	before := packBytes(srv.data)
	// A server leaves packs younger than its grace period to prune (they may
	// belong to a backup not yet committed): make these a day old.
	agePacks(t, srv.data, 24*time.Hour)

	admin.mustCostor("forget", ids[0])
	if got := snapshotIDSet(admin.snapshots()); slices.Contains(got, ids[0]) || len(got) != 2 {
		t.Fatalf("after forget %s: snapshots %q", ids[0][:8], got)
	}
	if got := snapshotIDSet(alpha.snapshots()); slices.Contains(got, ids[0]) {
		t.Errorf("agent alpha still lists the forgotten snapshot: %q", got)
	}
	mustFail(t, alpha, "restore of a forgotten snapshot", "restore", ids[0], "--target", alpha.path("gone"))

	admin.mustCostor("forget", "--keep-last", "1", "--host", "alpha", "--prune")
	got := snapshotIDSet(admin.snapshots())
	if !slices.Equal(got, []string{ids[2]}) {
		t.Fatalf("after forget --keep-last 1: snapshots %q, want only %s", got, ids[2][:8])
	}
	// With the server's grace period, what a client was recently told is
	// stored stays; --grace 0 frees what no snapshot references now.
	admin.mustCostor("prune")
	admin.mustCostor("prune", "--grace", "0")
	after := packBytes(srv.data)
	t.Logf("packs: %d MiB before forgetting 2 of 3 snapshots, %d MiB after prune --grace 0", before>>20, after>>20)
	// Two of the three 16 MiB generations are referenced by nothing now.
	if before-after < 24<<20 {
		t.Errorf("prune --grace 0 after forgetting 2 of 3 snapshots freed %d bytes of %d; want ≥ 24 MiB", before-after, before)
	}
	admin.mustCostor("check", "--read-data")
	target := alpha.path("restore")
	alpha.mustCostor("restore", "latest", "--host", "alpha", "--target", target)
	treegen.Compare(t, src, filepath.Join(target, src), treegen.CompareOptions{})
	// The agent's next backup still dedups against what is kept.
	sum := alpha.backupJSON("--host", "alpha", src)
	if added := sum.count(t, keyBytesAdded); added > 1<<20 {
		t.Errorf("a backup of unchanged data after prune added %d bytes", added)
	}
}
